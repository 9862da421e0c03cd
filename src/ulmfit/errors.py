"""User-facing errors: the CLI prints these as one clear line, without a traceback."""

import errno


class UlmfitError(Exception):
    """An error caused by the user's input or settings; the message says what and where."""


class InputError(UlmfitError):
    """Bad input data. Names the file and, where known, the line/row and field."""

    def __init__(self, message, path=None, line=None, field=None):
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        self.path, self.line, self.field = path, line, field
        super().__init__(": ".join(where + [message]))


# "No space left on device" and "disk quota exceeded": the same remedy for the user.
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(UlmfitError):
    """A write failed for lack of space (ENOSPC) or quota (EDQUOT). Names what was being written; whatever
    it was to replace is untouched (writes go to a temporary name first)."""

    def __init__(self, path, quota: bool = False, outcome: str = "nothing was replaced"):
        self.path, self.quota = path, quota
        what = "disk quota exceeded" if quota else "no space left on device"
        super().__init__(f"{path}: {what} while writing it ({outcome}; free some space and run again)")


def is_disk_full(e: BaseException) -> bool:
    return isinstance(e, DiskFullError) or (isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS)


def disk_full(e: BaseException, path, outcome: str = "nothing was replaced") -> DiskFullError:
    """`e` (an ENOSPC/EDQUOT OSError, or a DiskFullError of a write inside `path`) as an error naming `path`."""
    quota = e.quota if isinstance(e, DiskFullError) else getattr(e, "errno", None) == errno.EDQUOT
    return DiskFullError(path, quota, outcome)
