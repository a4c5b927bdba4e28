"""Which server-side paths the web app may read.

A web page that opens any path the visitor types is a file-disclosure hole, so the app
only reads files under a few allowed roots: the bundled samples, the folder the app was
started in, and whatever ``CKPTLAB_ROOTS`` adds (``os.pathsep``-separated). Paths are
resolved (symlinks followed) before the check, so neither ``..`` nor a link that points
out of a root gets through.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from ckptlab.errors import PathNotAllowedError, UnreadableFileError, quote

__all__ = ["ROOTS_ENV", "MAX_PATH_CHARS", "MAX_NAME_CHARS", "SAMPLES_DIR", "allowed_roots", "check_path",
    "OUTPUT_ROOTS_ENV", "OUTPUT_SUFFIXES", "output_roots", "check_output_path"]

ROOTS_ENV = "CKPTLAB_ROOTS"
MAX_PATH_CHARS = 4096  # PATH_MAX on Linux
MAX_NAME_CHARS = 255  # NAME_MAX: one file or folder name
SAMPLES_DIR = Path(__file__).resolve().parents[2] / "sample_ckpts"


def allowed_roots(start_dir: str | Path | None = None, env: Mapping[str, str] | None = None) -> list[Path]:
    """The resolved roots, samples first, without duplicates; missing folders are left out."""
    env = os.environ if env is None else env
    candidates: list[Path] = [SAMPLES_DIR, Path(start_dir) if start_dir is not None else Path.cwd()]
    candidates += [Path(part) for part in env.get(ROOTS_ENV, "").split(os.pathsep) if part.strip()]
    roots: list[Path] = []
    for candidate in candidates:
        root = candidate.expanduser().resolve()
        if root.is_dir() and root not in roots:
            roots.append(root)
    return roots


def _check_text(text: str) -> None:
    """A path the OS would refuse (NUL byte, over-long) is refused here, as a one-line error."""
    if "\0" in text:
        raise PathNotAllowedError("a server path may not contain a NUL byte", text)
    if len(text) > MAX_PATH_CHARS or any(len(part) > MAX_NAME_CHARS for part in text.split("/")):
        raise PathNotAllowedError(f"server path too long (at most {MAX_PATH_CHARS} characters, "
                                  f"{MAX_NAME_CHARS} per name)", text)


def check_path(path: str | Path, roots: Iterable[Path]) -> Path:
    """The resolved path if it lies under one of ``roots``, else ``PathNotAllowedError``.

    Relative paths are taken from the first root that holds them. The containment check
    comes before the existence check, so the answer never tells whether a file outside the
    roots exists.
    """
    roots = [Path(r).resolve() for r in roots]
    text = str(path).strip()
    if not text:
        raise PathNotAllowedError("no path given")
    _check_text(text)
    raw = Path(text).expanduser()
    if ".." in raw.parts:
        raise PathNotAllowedError(f"'..' is not allowed in server paths: {quote(text)}")
    candidates = [raw] if raw.is_absolute() else [root / raw for root in roots]
    for candidate in candidates:
        try:
            resolved = candidate.resolve()
            inside = any(resolved == root or resolved.is_relative_to(root) for root in roots)
            exists = inside and resolved.exists()
        except (OSError, ValueError, RuntimeError) as exc:  # too long for the OS, a symlink loop
            raise PathNotAllowedError(f"cannot resolve server path ({type(exc).__name__})", text) from None
        if not inside:
            continue
        if exists or candidate is candidates[-1]:
            if not exists:
                raise UnreadableFileError("no such file or folder", text)
            return resolved
    raise PathNotAllowedError(
        f"{quote(text)} is outside the allowed folders ({', '.join(str(r) for r in roots)}); "
        f"add a folder with {ROOTS_ENV}")


OUTPUT_ROOTS_ENV = "CKPTLAB_OUTPUT_ROOTS"
OUTPUT_SUFFIXES = (".safetensors", ".pt", ".pth")


def output_roots(env: Mapping[str, str] | None = None) -> list[Path]:
    """The folders the web app may write merged files into (``CKPTLAB_OUTPUT_ROOTS``,
    ``os.pathsep``-separated). None by default: writing on the server is opt-in."""
    env = os.environ if env is None else env
    roots: list[Path] = []
    for part in env.get(OUTPUT_ROOTS_ENV, "").split(os.pathsep):
        if part.strip():
            root = Path(part.strip()).expanduser().resolve()
            if root.is_dir() and root not in roots:
                roots.append(root)
    return roots


def check_output_path(path: str | Path, roots: Iterable[Path]) -> Path:
    """Where to write a merged file: a new ``.safetensors``/``.pt``/``.pth`` file whose
    folder lies under one of ``roots`` (``PathNotAllowedError`` otherwise). A relative
    path is taken from the first root; an existing file is never overwritten."""
    roots = [Path(r).resolve() for r in roots]
    text = str(path).strip()
    if not roots:
        raise PathNotAllowedError(f"writing on the server is off; start the app with {OUTPUT_ROOTS_ENV}=<folder>")
    if not text:
        raise PathNotAllowedError("no output path given")
    _check_text(text)
    raw = Path(text).expanduser()
    if ".." in raw.parts:
        raise PathNotAllowedError(f"'..' is not allowed in server paths: {text}")
    candidate = raw if raw.is_absolute() else roots[0] / raw
    if candidate.suffix not in OUTPUT_SUFFIXES:
        raise PathNotAllowedError(f"{text}: the file name must end in {', '.join(OUTPUT_SUFFIXES)}")
    folder = candidate.parent.resolve()
    if not any(folder == root or folder.is_relative_to(root) for root in roots):
        raise PathNotAllowedError(
            f"{text} is outside the output folders ({', '.join(str(r) for r in roots)}); "
            f"add a folder with {OUTPUT_ROOTS_ENV}")
    if not folder.is_dir():
        raise UnreadableFileError("no such folder", str(folder))
    target = folder / candidate.name
    if target.exists() or target.is_symlink():
        raise PathNotAllowedError(f"{target} exists already; choose a new file name")
    return target
