"""Errors the CLI turns into one-line messages with the right exit code."""


class ClipProbeError(Exception):
    """Base class: a problem the user can act on, reported without a traceback."""

    exit_code = 1


class UsageError(ClipProbeError):
    """Bad input: an unknown name, a missing file, an invalid value (exit code 2)."""

    exit_code = 2


class RunError(ClipProbeError):
    """The input was valid but the run failed: corrupted cache, unreachable weights (exit code 1)."""

    exit_code = 1
