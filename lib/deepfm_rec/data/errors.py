"""The one exception raised for bad input data, and the errnos of a full disk."""

import errno

# a write that found the disk, or the user's quota, full
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DataError(Exception):
    """Bad input: the message names the file (and line or key) and what is wrong."""
