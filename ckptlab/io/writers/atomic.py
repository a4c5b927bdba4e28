"""All-or-nothing output: temporary files beside the destinations, moved into place together.

Every file of an output (the shards and their index) is written in full as a temporary file
first; only then are they moved into place, the index last. If one move fails, the ones
already made are undone, so the old files are left exactly as they were. Temporary files go
away on any exception, on Ctrl-C, on SIGTERM (the handler is installed while a write runs in
the main thread) and at interpreter exit.

With ``exclusive=True`` (a server writing where several visitors choose names) no existing
file is ever replaced: each output is hard-linked into place, which fails if the name exists
(even one another writer made a moment ago), so "is it free?" and "take it" are one step.

A new file gets the mode the umask gives (``0644`` under ``022``, ``0600`` under ``077``), as
``open()`` would; a file that is overwritten keeps its mode. (``mkstemp`` alone makes every
output ``0600``.)
"""
from __future__ import annotations

import atexit
import os
import signal
import stat
import tempfile
import threading
from pathlib import Path

from ckptlab.errors import CheckpointError, MergeError

__all__ = ["current_umask", "output_mode", "AtomicFiles"]

_LIVE: set[str] = set()  # temporary files not yet moved into place, in every write of the process
_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the system tells (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _LOCK:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def output_mode(final: str | os.PathLike) -> int:
    """The permission bits ``final`` should get: its own if it exists, else what the umask gives."""
    try:
        return stat.S_IMODE(os.stat(final).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def _remove(paths, registry: set[str] | None = None) -> None:
    """Delete ``paths`` and forget them in ``registry`` (the live temp files by default); a
    path that cannot be deleted stays registered for the exit handler."""
    registry = _LIVE if registry is None else registry
    for path in list(paths):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError:
            continue
        registry.discard(path)


atexit.register(lambda: _remove(_LIVE))


class _TermAsExit:
    """While a write runs in the main thread, SIGTERM removes the temporary files and exits 143
    (or hands over to a handler someone else installed, after the removal)."""

    def __init__(self):
        self.previous = None
        self.installed = False

    def __enter__(self) -> "_TermAsExit":
        if threading.current_thread() is threading.main_thread():
            try:
                self.previous = signal.signal(signal.SIGTERM, self._handle)
                self.installed = True
            except (ValueError, OSError):  # no signals here (embedded interpreter)
                pass
        return self

    def _handle(self, signum, frame) -> None:
        _remove(_LIVE)
        if callable(self.previous):
            self.previous(signum, frame)
            return
        if self.previous == signal.SIG_IGN:
            return
        raise SystemExit(128 + signum)

    def __exit__(self, *exc) -> None:
        if self.installed:
            signal.signal(signal.SIGTERM, self.previous if self.previous is not None else signal.SIG_DFL)


class AtomicFiles:
    """``with AtomicFiles(finals) as tmp``: write ``tmp.paths``; they become ``finals`` on success.

    ``error`` is the ``CheckpointError`` subclass raised (one line naming the file) when a
    temporary file cannot be made or moved.
    """

    def __init__(self, finals: list[Path], error: type[CheckpointError] = MergeError, exclusive: bool = False):
        self.finals = [str(p) for p in finals]
        self.exclusive = exclusive
        self.paths: list[str] = []
        self.modes: list[int] = []  # given at the move, so a read-only original does not block the write
        self.error = error
        self._signals = _TermAsExit()

    def __enter__(self) -> "AtomicFiles":
        self._signals.__enter__()
        final = self.finals[0] if self.finals else ""
        try:
            for final in self.finals:
                folder, name = os.path.split(os.path.abspath(final))
                self.modes.append(output_mode(final))
                fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)  # 0600 while partial
                _LIVE.add(tmp)
                self.paths.append(tmp)
                os.close(fd)
        except OSError as exc:
            self._abort()
            raise self.error(f"cannot create a file there ({exc.strerror or exc})", final) from None
        except BaseException:
            self._abort()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._commit()
                return
            _remove(self.paths)
        finally:
            self._signals.__exit__()

    def _abort(self) -> None:
        _remove(self.paths)
        self._signals.__exit__()

    def _commit(self) -> None:
        """Move every file into place, or none: a failed move undoes the ones before it."""
        for final in self.finals:
            if os.path.isdir(final):
                _remove(self.paths)
                raise self.error("cannot write the output there: that is a folder", final)
        if self.exclusive:
            self._commit_new()
            return
        undo: list[tuple[str, str | None]] = []  # (final, hard link to its old content or None if new)
        backups: list[str] = []
        final = self.finals[0] if self.finals else ""
        try:
            for tmp, final, mode in zip(self.paths, self.finals, self.modes):
                os.chmod(tmp, mode)
                old = _backup(final)
                if old and old is not _UNRESTORABLE:
                    backups.append(old)
                os.replace(tmp, final)
                _LIVE.discard(tmp)
                if old is not _UNRESTORABLE:
                    undo.append((final, old))
        except BaseException as err:
            for moved, old in reversed(undo):
                _restore(moved, old)
            _remove(self.paths)
            if isinstance(err, OSError):
                raise self.error(f"cannot move the output into place ({err.strerror or err})", final) from None
            raise
        finally:
            _remove(backups, _BACKUPS)

    def _commit_new(self) -> None:
        """Link every file into place where no file exists, or none: ``link`` refuses an
        existing name atomically; the links made before a refusal are taken back."""
        made: list[tuple[str, str]] = []
        final = self.finals[0] if self.finals else ""
        try:
            for tmp, final, mode in zip(self.paths, self.finals, self.modes):
                os.chmod(tmp, mode)
                os.link(tmp, final, follow_symlinks=False)
                made.append((tmp, final))
        except OSError as err:
            for tmp, linked in reversed(made):
                _unlink_if_same(linked, tmp)
            _remove(self.paths)
            if isinstance(err, FileExistsError):
                raise self.error("exists already (nothing was overwritten); choose a new file name", final) from None
            raise self.error(f"cannot move the output into place ({err.strerror or err})", final) from None
        except BaseException:
            for tmp, linked in reversed(made):
                _unlink_if_same(linked, tmp)
            _remove(self.paths)
            raise
        _remove(self.paths)  # the outputs keep their links


def _unlink_if_same(path: str, twin: str) -> None:
    """Take back a link this write made (not a file someone put there since)."""
    try:
        if os.path.samefile(path, twin):
            os.unlink(path)
    except OSError:
        pass


_BACKUPS: set[str] = set()  # hard links to replaced files, kept until their output is whole
_UNRESTORABLE = "<no hard link possible>"
atexit.register(lambda: _remove(_BACKUPS, _BACKUPS))


def _backup(final: str) -> str | None:
    """A hard link to ``final``'s current content (None when there is none), kept until the
    whole output is in place so that a failed move can put the old file back."""
    if not os.path.lexists(final):
        return None
    folder, name = os.path.split(os.path.abspath(final))
    backup = os.path.join(folder, f".{name}.{os.getpid()}.{threading.get_ident()}.old")
    try:
        if os.path.lexists(backup):
            os.unlink(backup)
        os.link(final, backup, follow_symlinks=False)
    except OSError:  # a filesystem without hard links: each move is still atomic on its own
        return _UNRESTORABLE
    _BACKUPS.add(backup)
    return backup


def _restore(final: str, backup: str | None) -> None:
    try:
        if backup is None:
            os.unlink(final)
        else:
            os.replace(backup, final)
            _BACKUPS.discard(backup)
    except OSError:
        pass
