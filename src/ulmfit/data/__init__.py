"""Readers of sources (IMDb, tables, folders, plain corpora) into a prepared dataset folder."""
