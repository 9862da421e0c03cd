"""Cleaning rules, tokenizer backends, vocabulary and the token store."""
