"""The web app's server: Streamlit (as an ASGI app, ``st.App``) plus one route that
streams a built file from disk.

Streamlit's own download button keeps the whole file in memory (its media storage holds
bytes); a 2 GB merge read on every rerun killed the server. The route here sends the file
in chunks (Starlette's ``FileResponse``) for a link made by ``ckptlab.ui.files.serve``.
"""
from __future__ import annotations

from pathlib import Path

from ckptlab.ui import files

PAGE_SCRIPT = Path(__file__).with_name("app_script.py")
ACTIVE = False          # True in a process that serves the route (links work); else buttons


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
    return [Route(files.DOWNLOAD_ROUTE, download, methods=["GET", "HEAD"])]
