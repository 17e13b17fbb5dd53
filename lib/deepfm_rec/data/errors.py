"""The one exception raised for bad input data."""


class DataError(Exception):
    """Bad input: the message names the file (and line or key) and what is wrong."""
