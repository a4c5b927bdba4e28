"""Every failure ckptlab reports on purpose is a ``CheckpointError``.

The core never prints: it raises one of these with a one-line message that names the
file (or key, or rule) and what is wrong, and the CLI and the web app decide how to show
it. Anything else escaping the core is a bug.
"""
from __future__ import annotations

from pathlib import Path


class CheckpointError(Exception):
    """Base class: a one-line, user-facing message."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = str(path) if path is not None else None
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class UnreadableFileError(CheckpointError):
    """The file does not exist, is empty, truncated, or not a format ckptlab knows."""


class UnsafePickleError(CheckpointError):
    """A pickle asked to call something outside the allowlist; nothing was called."""


class ContainerError(CheckpointError):
    """No tensor mapping where one was asked for (or none at all)."""


class UnsupportedFormatError(CheckpointError):
    """A known format ckptlab cannot (yet) read, e.g. a quantized TorchScript archive."""


class RecipeError(CheckpointError):
    """A recipe is invalid: bad regex, unknown rule, wrong argument type."""


class AdaptError(CheckpointError):
    """A shape adapter cannot turn the source shape into the target shape."""


class MergeError(CheckpointError):
    """A merge cannot be written: conflicts or unresolved shape mismatches remain."""


class ModelSpecError(CheckpointError):
    """A model definition could not be built (bad spec, code not allowed, bad kwargs)."""


class PathNotAllowedError(CheckpointError):
    """A server-side path lies outside the allowed roots."""
