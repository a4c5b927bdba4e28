"""Uploads streamed to disk: a route beside the download route, and the tickets that bind
it to one visitor's session folder.

Streamlit 1.67 keeps every ``st.file_uploader`` file in server memory (its upload route
reads the whole body, ``MemoryUploadedFileManager`` holds the bytes; no setting changes
that): two 181 MB uploads took a server from 529 MB to 1,123 MB. Here the page draws a drop
zone (``ckptlab.ui.dropzone``) that sends the file to ``PUT /ckptlab/upload/<ticket>``,
which writes it to the session folder in chunks as it arrives (a ``.part`` file, renamed
when complete: a half-received file is never opened), then the page picks it up by its
ticket (``received``).

A ticket is a random token the page makes for one session folder and one input (source,
target); like a download link it is bound to the browser that got it (its Streamlit XSRF
cookie): another browser gets the same 404 as an unknown ticket. Sizes are bounded before a
byte is written (the declared ``Content-Length``) and while bytes arrive: one file
(``MAX_FILE``), one visitor's files on the server (``VISITOR_QUOTA``: what it stored plus
what it is sending), all visitors' (``TOTAL_QUOTA``), and the disk's free space. Each
limit is an environment variable in MB.
"""
from __future__ import annotations

import hmac
import os
import re
import secrets
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ckptlab.ui import files

UPLOAD_ROUTE = "/ckptlab/upload/{token}"
MB = 2**20
MAX_FILE_ENV, VISITOR_ENV, TOTAL_ENV = "CKPTLAB_UPLOAD_MAX_MB", "CKPTLAB_UPLOAD_VISITOR_MB", "CKPTLAB_UPLOAD_TOTAL_MB"
MAX_FILE = 2048 * MB           # one file (the page says "upload limit 2 GB")
VISITOR_QUOTA = 4096 * MB      # one browser's uploads on the server at once
TOTAL_QUOTA = 16384 * MB       # every visitor's
DISK_MARGIN = 512 * MB         # free space an upload must leave on the scratch disk
WRITE_BLOCK = 4 * MB           # bytes gathered before a write (done in a worker thread)
_LOCK = threading.Lock()


def limit(env: str, default: int) -> int:
    try:
        return max(0, int(float(os.environ[env]) * MB)) if env in os.environ else default
    except ValueError:
        return default


@dataclass
class Ticket:
    """Where one input's uploads go (a session folder's sub-folder) and whose they are."""

    folder: Path
    owner: str                    # the session folder (freed with it)
    browser: str                  # hash of the visitor's XSRF token ("": unbound)
    path: Path | None = None      # the file received last
    name: str = ""                # its name as the visitor's browser gave it
    size: int = 0
    count: int = 0                # files received so far (the page reruns on a new one)
    sending: int = 0              # bytes reserved by an upload in progress
    part: Path | None = field(default=None, repr=False)


_tickets: dict[str, Ticket] = {}


def route_path() -> str:
    """The upload route under ``server.baseUrlPath`` (as ``files.route_path`` for downloads)."""
    return files.route_path().replace(files.DOWNLOAD_ROUTE, UPLOAD_ROUTE)


def issue(folder: Path, owner: str | Path, browser: str) -> str:
    """A new ticket for uploads into ``folder`` by ``browser``."""
    token = secrets.token_urlsafe(24)
    with _LOCK:
        for gone in [t for t, k in _tickets.items() if not Path(k.owner).is_dir()]:
            del _tickets[gone]                    # their session folder went with the visit
        _tickets[token] = Ticket(Path(folder), str(owner), browser)
    return token


def lookup(token: str, browser: str = "") -> Ticket | None:
    """The ticket, if it exists, its folder still does and the browser is the one it was
    made for (anything else: None, alike)."""
    with _LOCK:
        ticket = _tickets.get(token)
    if ticket is None or not Path(ticket.owner).is_dir():
        return None
    if ticket.browser and not hmac.compare_digest(ticket.browser, browser):
        return None
    return ticket


def received(token: str) -> Ticket | None:
    """The ticket when it holds a received file that is still there."""
    with _LOCK:
        ticket = _tickets.get(token)
    if ticket is None or ticket.path is None or not ticket.path.is_file():
        return None
    return ticket


def forget(token: str) -> None:
    """Drop a ticket and its file (the visitor removed it, or switched the input)."""
    with _LOCK:
        ticket = _tickets.pop(token, None)
    if ticket is not None and ticket.path is not None:
        ticket.path.unlink(missing_ok=True)


def forget_owner(owner: str) -> None:
    """A session folder is gone: its tickets go (its files went with the folder)."""
    with _LOCK:
        for token in [t for t, k in _tickets.items() if k.owner == owner]:
            del _tickets[token]


def _held(ticket: Ticket) -> int:
    return (ticket.size if ticket.path is not None and ticket.path.is_file() else 0) + ticket.sending


def usage(browser: str | None = None) -> int:
    """Bytes on the server in uploads (stored or being received), of one browser or all."""
    with _LOCK:
        tickets = list(_tickets.values())
    return sum(_held(t) for t in tickets if browser is None or t.browser == browser)


class Refused(Exception):
    """An upload the limits do not allow: ``status`` and one line for the visitor."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def reserve(ticket: Ticket, length: int) -> None:
    """Count ``length`` bytes against the limits before any is written (or refuse)."""
    largest = limit(MAX_FILE_ENV, MAX_FILE)
    if length > largest:
        raise Refused(413, f"the file is {length / MB:,.0f} MB; uploads are limited to {largest / MB:,.0f} MB "
                           "(use Server path for bigger files)")
    with _LOCK:
        tickets = list(_tickets.values())
        mine = sum(_held(t) for t in tickets if t.browser == ticket.browser and t is not ticket) + ticket.sending
        everyone = sum(_held(t) for t in tickets if t is not ticket) + ticket.sending
        if mine + length > limit(VISITOR_ENV, VISITOR_QUOTA):
            raise Refused(413, f"your uploads on this server would pass {limit(VISITOR_ENV, VISITOR_QUOTA) / MB:,.0f} MB:"
                               " remove one first")
        if everyone + length > limit(TOTAL_ENV, TOTAL_QUOTA):
            raise Refused(503, "the server holds as many uploads as it may: try again later, or use Server path")
        if shutil.disk_usage(ticket.folder.parent).free - length < DISK_MARGIN:
            raise Refused(507, "the server's disk is too full for this file: use Server path")
        ticket.sending += length


def safe_name(name: str) -> str:
    """A file name without folders or odd characters (uploads name their own files)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).name).lstrip(".")
    return cleaned[:200] or "upload.bin"


async def receive(ticket: Ticket, chunks, length: int, name: str) -> Path:
    """Write the body (``chunks``, an async iterator) into the ticket's folder: a ``.part``
    file renamed into place once all ``length`` bytes came. The previous file of the ticket
    is removed (the input holds one file). Any failure leaves nothing behind."""
    from starlette.concurrency import run_in_threadpool

    ticket.folder.mkdir(parents=True, exist_ok=True)
    part = ticket.folder / f".upload-{secrets.token_hex(8)}.part"
    done, block = 0, bytearray()
    try:
        out = await run_in_threadpool(open, part, "xb")     # disk work off the event loop
        try:
            async for chunk in chunks:
                done += len(chunk)
                if done > length:
                    raise Refused(400, "the browser sent more bytes than it announced")
                block += chunk
                if len(block) >= WRITE_BLOCK:
                    await run_in_threadpool(out.write, bytes(block))
                    block.clear()
            if block:
                await run_in_threadpool(out.write, bytes(block))
        finally:
            out.close()
        if done != length:
            raise Refused(400, f"the upload stopped after {done:,} of {length:,} bytes")
        final = ticket.folder / safe_name(name)
        previous = ticket.path
        part.replace(final)
        if previous is not None and previous != final:
            previous.unlink(missing_ok=True)
        with _LOCK:
            ticket.path, ticket.name, ticket.size = final, name, length
            ticket.count += 1
        return final
    finally:
        part.unlink(missing_ok=True)
        with _LOCK:
            ticket.sending = max(0, ticket.sending - length)


def route():
    """The Starlette route: ``PUT`` a file's bytes (its name in ``?name=``), ``DELETE`` it."""
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def upload(request):
        browser = files.browser_id(request.cookies.get(files.XSRF_COOKIE))
        ticket = lookup(request.path_params["token"], browser)
        if ticket is None:
            return JSONResponse({"error": "This upload form has expired: reload the page."}, status_code=404)
        if request.method == "DELETE":
            forget(request.path_params["token"])
            return JSONResponse({"ok": True})
        try:
            length = int(request.headers.get("content-length", ""))
        except ValueError:
            return JSONResponse({"error": "the upload gave no size (Content-Length)"}, status_code=411)
        name = request.query_params.get("name", "") or "upload.bin"
        try:
            reserve(ticket, length)
            await receive(ticket, request.stream(), length, name)
        except Refused as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except OSError as exc:
            return JSONResponse({"error": f"the server could not store the file ({exc.strerror})"}, status_code=507)
        return JSONResponse({"ok": True, "name": name, "size": length, "count": ticket.count})

    return Route(route_path(), upload, methods=["PUT", "DELETE"])
