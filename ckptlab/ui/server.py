"""The web app's server: Streamlit (as an ASGI app, ``st.App``) plus one route that
streams a built file from disk.

Streamlit's own download button keeps the whole file in memory (its media storage holds
bytes); a 2 GB merge read on every rerun killed the server. The route here sends the file
in chunks (Starlette's ``FileResponse``) for a link made by ``ckptlab.ui.files.serve``.
"""
from __future__ import annotations

import threading
from pathlib import Path

from ckptlab.ui import files

PAGE_SCRIPT = Path(__file__).with_name("app_script.py")
ACTIVE = False          # True in a process that serves the route (links work); else buttons


def warm_up() -> None:
    """At server start, import what the page needs and align the demo pair once, so the
    first visitor does not wait for torch, pandas and plotly to load."""
    try:
        import ckptlab
        from ckptlab.ui import inputs, page, suggestions, summary, views  # noqa: F401
        from ckptlab.ui.samples import PAIRS

        ckptlab.align(PAIRS[0].source.path, PAIRS[0].target.path, auto="none")
    except Exception:  # noqa: BLE001 - a warm-up only: the page reports real errors itself
        pass


def routes() -> list:
    """The extra routes; called once by the server at start (``app.py``), which also
    sweeps the folders of servers that are gone and marks links as served."""
    global ACTIVE
    from starlette.responses import FileResponse, PlainTextResponse
    from starlette.routing import Route

    async def download(request):
        served = files.lookup(request.path_params["token"])
        if served is None:
            return PlainTextResponse("This download link has expired: build the file again.", status_code=404)
        return FileResponse(served.path, media_type=served.mime, filename=served.file_name,
                            headers={"Cache-Control": "no-store"})

    files.sweep_stale()
    ACTIVE = True
    threading.Thread(target=warm_up, name="ckptlab-warm-up", daemon=True).start()
    return [Route(files.DOWNLOAD_ROUTE, download, methods=["GET", "HEAD"])]
