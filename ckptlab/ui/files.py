"""Files of the web app on the server: one folder per server process, one per session
inside it, and the download links that serve them from disk.

- A server's folder (``ckptlab-server-<pid>-<random>``) holds a lock file locked for as
  long as the server runs. On start, the folders whose lock can be taken belong to
  servers that are gone and are removed; a running server's folder (and so every live
  session's files) is never touched.
- A session's folder is removed when its state is dropped (the visitor left), with the
  download links that point into it.
- A download link is a random token naming one file; the server's route streams it from
  disk in chunks (``ckptlab.ui.server``), so a 2 GB merge never sits in memory. A link is
  bound to the browser whose visit built it: the token alone is not enough, the request
  must carry that browser's Streamlit XSRF cookie too (the token inside it, which a browser
  keeps for the visit; a link pasted into another browser gets the same 404 as an unknown
  one). Without that cookie (XSRF protection turned off) the token alone serves. Streamlit
  serves its own routes under ``server.baseUrlPath`` (``/ckpt/`` behind a team proxy) but
  mounts extra routes as given, so the route and the links both carry that path
  (``route_path``); a link to ``/ckptlab/...`` would miss the proxy and 404.
"""
from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import secrets
import shutil
import tempfile
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

SERVER_PREFIX = "ckptlab-server-"
LOCK_NAME = ".lock"
DOWNLOAD_ROUTE = "/ckptlab/download/{token}"
ROUTE_ACTIVE = False    # True in a process that serves the route (links work); else buttons
_LOCK = threading.Lock()
_server_dir: Path | None = None
_server_lock = None                       # the open, locked file (kept for the process's life)


@dataclass(frozen=True)
class Served:
    path: Path
    file_name: str
    mime: str
    owner: str                            # the session folder it belongs to ("" for output roots)
    browser: str = ""                     # hash of the building browser's XSRF token ("": unbound)


_served: dict[str, Served] = {}


def temp_root() -> Path:
    return Path(tempfile.gettempdir())


def sweep_stale(root: Path | None = None) -> list[Path]:
    """Remove the folders of ckptlab servers that are no longer running; return them."""
    removed = []
    for folder in sorted((root or temp_root()).glob(SERVER_PREFIX + "*")):
        if folder == _server_dir or not folder.is_dir():
            continue
        lock = folder / LOCK_NAME
        try:
            with open(lock, "a+") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)    # taken: its server is gone
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        except BlockingIOError:
            continue                                                  # a live server holds it
        except OSError:
            continue
    return removed


def server_dir() -> Path:
    """This server process's folder (created, locked and stale ones swept on first use)."""
    global _server_dir, _server_lock
    with _LOCK:
        if _server_dir is None or not _server_dir.is_dir():
            sweep_stale()
            folder = Path(tempfile.mkdtemp(prefix=f"{SERVER_PREFIX}{os.getpid()}-"))
            handle = open(folder / LOCK_NAME, "a+")               # noqa: SIM115 - held until exit
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _server_dir, _server_lock = folder, handle
            weakref.finalize(handle, shutil.rmtree, folder, True)   # at the latest when the server exits
        return _server_dir


def remove_server_dir() -> None:
    """Remove this server's folder now (the server is stopping): every session folder and
    link goes with it, and the lock is released."""
    global _server_dir, _server_lock
    with _LOCK:
        folder, handle = _server_dir, _server_lock
        _server_dir = _server_lock = None
        _served.clear()
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
    if handle is not None:
        handle.close()


class SessionFolder:
    """A folder owned by one session's state: removed (with its download links) when that
    state is dropped, or at the latest when the server exits."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="session-", dir=server_dir()))
        self._cleanup = weakref.finalize(self, remove_session_folder, self.path)


def remove_session_folder(path: Path) -> None:
    forget_owner(str(path))
    shutil.rmtree(path, ignore_errors=True)


def route_path() -> str:
    """The download route under the server's ``server.baseUrlPath`` (read now: the server
    registers it at start, the page builds its links with the same)."""
    from streamlit import config

    base = str(config.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}{DOWNLOAD_ROUTE}" if base else DOWNLOAD_ROUTE


def serve(path: Path, file_name: str, mime: str = "application/octet-stream", owner: str | Path = "",
          browser: str = "") -> str:
    """A new download link for ``path`` (the URL path of the server's route), for the
    browser ``browser`` (``browser_id``) only."""
    token = secrets.token_urlsafe(24)
    with _LOCK:
        _served[token] = Served(Path(path), file_name, mime, str(owner), browser)
    return route_path().format(token=token)


XSRF_COOKIE = "_streamlit_xsrf"


def browser_id(cookie: str | None) -> str:
    """A stable id of the browser behind a Streamlit XSRF cookie: a hash of the token it
    carries (the cookie's mask changes each time it is set, the token does not)."""
    if not isinstance(cookie, str) or not cookie:      # none, or a test harness's stand-in
        return ""
    token: bytes | None = None
    try:
        from streamlit.web.server.starlette.starlette_app_utils import decode_xsrf_token_string

        token, _ = decode_xsrf_token_string(cookie)
    except Exception:  # noqa: BLE001 - another Streamlit: the raw value still binds the link
        token = None
    return hashlib.sha256(token or cookie.encode()).hexdigest()


def lookup(token: str, browser: str = "") -> Served | None:
    """The file a link names, if it still exists and the request comes from the browser
    that built it (anything else gets nothing, alike)."""
    with _LOCK:
        served = _served.get(token)
    if served is None or not served.path.is_file():
        return None
    if served.browser and not hmac.compare_digest(served.browser, browser):
        return None
    return served


def forget(url: str) -> None:
    with _LOCK:
        _served.pop(url.rsplit("/", 1)[-1], None)


def forget_owner(owner: str) -> None:
    with _LOCK:
        for token in [t for t, s in _served.items() if s.owner == owner]:
            del _served[token]
