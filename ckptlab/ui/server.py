"""The web app's server: Streamlit (as an ASGI app, ``st.App``) plus two routes that keep
big files on disk: one streams a built file to the browser, one streams an upload in.

Streamlit's own download button keeps the whole file in memory (its media storage holds
bytes); a 2 GB merge read on every rerun killed the server. The download route sends the
file in chunks (Starlette's ``FileResponse``) for a link made by ``ckptlab.ui.files.serve``.
Streamlit's uploader keeps uploads in memory too; the upload route (``ckptlab.ui.uploads``)
writes them to the visitor's session folder as they arrive.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ckptlab.ui import files, heap, lifecycle, uploads

PAGE_SCRIPT = Path(__file__).with_name("app_script.py")


def warm_up() -> None:
    """Before the server listens, import what the page needs (torch and pandas take seconds
    on a busy machine) and open and align the first demo pair into the caches every session
    shares, so the first visitor waits no longer than any later one.

    It runs inside ``routes()``, which the server calls before it binds its port: the server
    says it is up (``/_stcore/health``, the URL in the console) once it can serve a page at
    once. Done in a thread beside a listening server, the first visitor found the imports
    still running and waited for them (measured: 10 s to a usable page, 3 s warm).

    Last, what is alive then (torch, pandas, Streamlit) leaves the garbage collector's full
    scans, and so does each long-lived result cached later (``ckptlab.ui.heap``)."""
    try:
        from ckptlab.recipe.model import Recipe
        from ckptlab.ui import inputs, page, state, suggestions, summary, table, views  # noqa: F401
        from ckptlab.ui.samples import PAIRS

        sides = [state.open_shared(sample.path) for sample in (PAIRS[0].source, PAIRS[0].target)]
        (source_id, source), (target_id, target) = sides
        state.aligned_shared((source_id, target_id), source, target, Recipe(), inputs.AUTO_DEFAULT)
    except Exception:  # noqa: BLE001 - a warm-up only: the page reports real errors itself
        pass
    heap.settle()


def routes() -> list:
    """The extra routes; called once by the server at start (``app.py``), which also
    sweeps the folders of servers that are gone and marks links as served."""
    from starlette.responses import FileResponse, PlainTextResponse
    from starlette.routing import Route

    async def download(request):
        browser = files.browser_id(request.cookies.get(files.XSRF_COOKIE))
        served = files.lookup(request.path_params["token"], browser)   # another browser: the same 404
        if served is None:
            return PlainTextResponse("This download link has expired: build the file again.", status_code=404)
        return FileResponse(served.path, media_type=served.mime, filename=served.file_name,
                            headers={"Cache-Control": "no-store"})

    files.sweep_stale()
    files.server_dir()          # made (and locked) now: the scratch is known from the start
    files.ROUTE_ACTIVE = True
    heap.enable()
    lifecycle.start()
    warm_up()
    return [Route(files.route_path(), download, methods=["GET", "HEAD"]), uploads.route()]


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    """The server's end (SIGTERM, SIGINT, Ctrl-C) removes its scratch folder: every
    visitor's uploads and built files. uvicorn stops gracefully, then re-raises the
    signal, so the process dies by it and exit hooks (``atexit``) never run."""
    try:
        yield
    finally:
        files.remove_server_dir()
