"""Stage 3 of ULMFiT: the classifier's batches, training task and commands.

The model itself lives in `ulmfit.models.classifier`; prediction in `ulmfit.inference`.
"""
