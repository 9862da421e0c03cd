"""Batches from the token store's flat arrays: language-model streams (`lm`) and documents (`documents`)."""
