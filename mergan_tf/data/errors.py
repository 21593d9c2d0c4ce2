"""DataError, the one exception of the data layer, and `listing` for its messages."""

import os


class DataError(ValueError):
    """Bad or missing input data; the message names the file/problem and the fix."""


def listing(data_dir: str, limit: int = 10) -> str:
    """A short description of a directory's contents for error messages."""
    names = sorted(os.listdir(data_dir))
    if not names:
        return "nothing (the directory is empty)"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
