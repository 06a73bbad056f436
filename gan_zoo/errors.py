"""The errors that mean bad input (or a diverged fit) rather than a bug.

Every command prints them as one ``error:`` line with exit status 2 and no traceback (``gan_zoo.cli.run_main``). They
live here, apart from the code that raises them, so that the command line can name them without importing torch,
and so that data, metrics and models share them without importing one another.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input: printed as one line, exit status 2, no traceback."""


class UnknownNameError(KeyError):
    """An unknown model, data set or zoo entry name. The message lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable on one line
        return str(self.args[0]) if self.args else ""


class DataError(ValueError):
    """A data set that exists but cannot be used (corrupt or inconsistent files); the message says which file."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A data set that could not be found; the message says where we looked and how to get it."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or for another model; the message says which."""


class PretrainedError(CheckpointError):
    """A zoo entry that cannot be loaded (missing, corrupt, truncated or mismatched file); the message says why."""


class ExtractorError(ValueError):
    """A feature extractor that cannot be loaded (missing, corrupt or mismatched file); the message says why."""


class DivergenceError(RuntimeError):
    """A loss became NaN or infinite; the message names the loss, the step and the last good checkpoint."""


USER_ERRORS: tuple[type[BaseException], ...] = (UserError, UnknownNameError, DataError, CheckpointError,
                                                ExtractorError, DivergenceError)
"""What ``run_main`` reports as one line instead of a traceback."""
