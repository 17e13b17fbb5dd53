"""Data: sources (fetch, verify, parse), users, encoding, batches."""
