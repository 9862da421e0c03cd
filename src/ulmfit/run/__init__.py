"""`ulmfit run CONFIG`: every stage from raw data to an evaluated classifier, cached and resumable."""
