"""The project's own exceptions: problems the person running it can fix, each with a message that says how.

The library raises these and never ends the process; `main.py` prints their message as one `error:` line. Any other
exception is a bug, and keeps its traceback."""


class FlamingoError(Exception):
    """Base class: a bad setting, file or request, described in words a user can act on."""


class ConfigError(FlamingoError):
    """A setting out of range, of the wrong type, or inconsistent with another."""


class CheckpointError(FlamingoError):
    """A missing, unreadable, foreign or mismatched checkpoint or run folder."""


class TrainingError(FlamingoError):
    """Training cannot go on (a non-finite loss); the last good checkpoint is intact."""


class EvalError(FlamingoError):
    """An evaluation or sampling request that cannot run as asked."""
