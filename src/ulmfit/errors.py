"""User-facing errors: the CLI prints these as one clear line, without a traceback."""


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
