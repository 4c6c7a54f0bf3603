"""Errors a user can cause. The command line prints them as one line, without a traceback."""


class MaedError(Exception):
    """Base class of every user-facing error (bad file, bad option, missing asset)."""


class ConfigError(MaedError, ValueError):
    """A configuration file or override that does not fit the schema."""


class AssetError(MaedError, FileNotFoundError):
    """A licence-gated asset (SMPL files, checkpoint, dataset) is missing or malformed."""


class CheckpointError(MaedError, RuntimeError):
    """A checkpoint that does not fit the model it is loaded into."""


class DataError(MaedError, ValueError):
    """A dataset file or annotation with missing fields or wrong shapes."""


class OutputError(MaedError, OSError):
    """An output location that cannot take the output: it holds something else (another run's results),
    is not a directory, or the write failed (disk full, no permission, read-only file system)."""
