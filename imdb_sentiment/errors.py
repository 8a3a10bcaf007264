"""The error a user can fix: standard library only, so that every module can import it."""


class StageError(RuntimeError):
    """A problem the user can fix (bad input, missing file, unreachable server); the message
    says how. Entry points print it as one line, without a traceback."""
