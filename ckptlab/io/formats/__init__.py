"""Format readers: sniff a path by content and parse its headers into a ``Loaded`` tree.

``read(path)`` is the only entry point. Every reader is lazy (tensor bytes stay on disk
until ``LazyTensor.load()``) and safe (every pickle goes through the restricted unpickler).
Format names: ``torch-zip``, ``torch-legacy``, ``torchscript``, ``safetensors``,
``sharded-safetensors``, ``sharded-torch``, ``dcp`` and ``pickle`` (a plain pickle).
"""
from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ckptlab.errors import CheckpointError, UnreadableFileError, UnsupportedFormatError
from ckptlab.io.formats import sniff as _sniff
from ckptlab.io.formats.base import LazyTensor, Loaded
from ckptlab.io.formats.region import Region

__all__ = ["read", "Loaded", "LazyTensor", "paused_gc"]


@contextmanager
def paused_gc() -> Iterator[None]:
    """Parsing makes many small objects and no cycles; with torch's millions of live objects
    loaded, the generational collections they trigger cost more than the parse itself."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read(path: str | Path) -> Loaded:
    """Parse the checkpoint at ``path`` (file, ``*.index.json`` or DCP folder), headers only.

    Every failure is a one-line ``CheckpointError``: the readers raise their own for every
    problem they check, and this boundary turns anything else that parsing hostile bytes
    (or a path the OS refuses) can raise into an ``UnreadableFileError`` naming the file.
    """
    text = str(path)
    if "\0" in text:
        raise UnreadableFileError("path contains a NUL byte", text)
    try:
        with paused_gc():
            return _read(Path(path))
    except CheckpointError:
        raise
    except RecursionError:
        raise UnreadableFileError("corrupt checkpoint (nested too deeply)", text) from None
    except MemoryError:
        raise UnreadableFileError("corrupt checkpoint (asks for more memory than exists)", text) from None
    except OSError as exc:
        raise UnreadableFileError(f"cannot read ({exc.strerror or type(exc).__name__})", text) from None
    except Exception as exc:  # noqa: BLE001 - hostile bytes: any other failure is "corrupt"
        raise UnreadableFileError(f"corrupt checkpoint ({type(exc).__name__}: {str(exc)[:120]})", text) from None


def _read(path: Path) -> Loaded:
    if path.is_dir() and not (path / ".metadata").is_file() and _sniff.index_in(path) is not None:
        path = _sniff.index_in(path)
    kind = _sniff.sniff(path)
    if kind == _sniff.ZIP:
        from ckptlab.io.formats.torch_zip import read_torch_zip

        return read_torch_zip(Region(path), path)
    if kind == _sniff.PICKLE:
        return _read_pickle(path)
    if kind == _sniff.SAFETENSORS:
        from ckptlab.io.formats.safetensors_fmt import read_safetensors

        return read_safetensors(path)
    if kind == _sniff.INDEX:
        from ckptlab.io.formats.sharded import read_index

        return read_index(path, _read)
    if kind == _sniff.DCP:
        from ckptlab.io.formats.dcp import read_dcp

        return read_dcp(path)
    raise UnsupportedFormatError("tar-format checkpoints (torch < 0.4) are not supported", path)


def _read_pickle(path: Path) -> Loaded:
    """A legacy torch file starts with a pickled magic number; anything else is a plain pickle."""
    from ckptlab.io.formats.torch_legacy import is_legacy_magic, read_legacy
    from ckptlab.io.formats.unpickler import restricted_load

    with open(path, "rb") as f:
        first, placeholders = restricted_load(f, path)
        if is_legacy_magic(first):
            return read_legacy(f, path)
    return Loaded("pickle", first, tuple(sorted(placeholders)))
