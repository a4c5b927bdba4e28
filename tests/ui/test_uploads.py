"""The upload route (``ckptlab.ui.uploads``), driven as the server runs it (an ASGI app, the
body arriving in chunks): the file lands whole in the ticket's folder through a ``.part``
file; another browser's request, an oversized file, a visitor or server over its quota, a
body that stops short or runs long leave nothing behind."""
from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from starlette.applications import Starlette

from ckptlab.ui import files, uploads

MB = 2**20


def server() -> Starlette:
    return Starlette(routes=[uploads.route()])


def request(app: Starlette, method: str, token: str, chunks: list[bytes], cookie: str, length: int | None = None,
            name: str = "model.pt") -> tuple[int, dict]:
    """One HTTP request through the ASGI app; (status, JSON reply)."""
    declared = sum(map(len, chunks)) if length is None else length
    headers = [(b"cookie", f"{files.XSRF_COOKIE}={cookie}".encode())]
    if method == "PUT":
        headers.append((b"content-length", str(declared).encode()))
    scope = {"type": "http", "method": method, "path": uploads.UPLOAD_ROUTE.format(token=token), "root_path": "",
             "query_string": f"name={name}".encode(), "headers": headers, "http_version": "1.1",
             "scheme": "http", "server": ("test", 80), "client": ("test", 1)}
    pending = list(chunks)
    sent: dict = {"body": b""}

    async def receive():
        if pending:
            return {"type": "http.request", "body": pending.pop(0), "more_body": bool(pending)}
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]
        elif message["type"] == "http.response.body":
            sent["body"] += message.get("body", b"")

    # in a thread of its own: the browser tests' Playwright keeps an event loop running in this one
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, app(scope, receive, send)).result()
    return sent["status"], json.loads(sent["body"] or b"{}")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    owner = tmp_path / "session-1"
    owner.mkdir()
    yield owner
    uploads.forget_owner(str(owner))


def ticket(folder: Path, cookie: str = "browser-a") -> str:
    return uploads.issue(folder / "source", folder, files.browser_id(cookie))


def test_a_file_arrives_whole_in_the_tickets_folder(folder: Path) -> None:
    token = ticket(folder)
    body = [bytes([n]) * (3 * MB // 2) for n in range(4)]               # 6 MB in chunks
    status, reply = request(server(), "PUT", token, body, "browser-a", name="../../font un.pt")
    assert status == 200 and reply["size"] == 6 * MB
    got = uploads.received(token)
    assert got.path == folder / "source" / "font_un.pt" and got.name == "../../font un.pt"
    assert got.path.read_bytes() == b"".join(body)
    assert not list((folder / "source").glob("*.part")) and not list((folder / "source").glob(".upload-*"))
    assert uploads.usage(files.browser_id("browser-a")) == 6 * MB


def test_another_browser_gets_404_and_writes_nothing(folder: Path) -> None:
    token = ticket(folder)
    status, _ = request(server(), "PUT", token, [b"x" * 100], "browser-b")
    assert status == 404 and not (folder / "source").exists()
    status, _ = request(server(), "PUT", "no-such-ticket", [b"x"], "browser-a")
    assert status == 404


def test_a_second_file_replaces_the_first_and_delete_removes_it(folder: Path) -> None:
    token = ticket(folder)
    request(server(), "PUT", token, [b"a" * 10], "browser-a", name="one.pt")
    first = uploads.received(token).path
    request(server(), "PUT", token, [b"b" * 20], "browser-a", name="two.pt")
    assert not first.exists() and uploads.received(token).path.read_bytes() == b"b" * 20
    status, _ = request(server(), "DELETE", token, [], "browser-a")
    assert status == 200 and not list((folder / "source").iterdir()) and uploads.received(token) is None


def test_an_oversized_file_is_refused_before_a_byte_is_written(folder: Path, monkeypatch) -> None:
    monkeypatch.setenv(uploads.MAX_FILE_ENV, "1")
    status, reply = request(server(), "PUT", ticket(folder), [b"x" * (2 * MB)], "browser-a")
    assert status == 413 and "limited to 1 MB" in reply["error"]
    assert not (folder / "source").exists() or not list((folder / "source").iterdir())


def test_visitor_and_server_quotas(folder: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(uploads.VISITOR_ENV, "3")
    monkeypatch.setenv(uploads.TOTAL_ENV, "5")
    app = server()
    assert request(app, "PUT", ticket(folder), [b"x" * (2 * MB)], "browser-a")[0] == 200
    status, reply = request(app, "PUT", uploads.issue(folder / "target", folder, files.browser_id("browser-a")),
                            [b"y" * (2 * MB)], "browser-a")
    assert status == 413 and "remove one first" in reply["error"]       # 4 MB > this visitor's 3 MB
    other = tmp_path / "session-2"
    other.mkdir()
    try:
        assert request(app, "PUT", ticket(other, "browser-b"), [b"z" * (2 * MB)], "browser-b")[0] == 200
        third = tmp_path / "session-3"
        third.mkdir()
        status, reply = request(app, "PUT", ticket(third, "browser-c"), [b"w" * (2 * MB)], "browser-c")
        assert status == 503 and "as many uploads as it may" in reply["error"]    # 6 MB > the server's 5
    finally:
        uploads.forget_owner(str(other))
        uploads.forget_owner(str(tmp_path / "session-3"))


@pytest.mark.parametrize("declared, why", [(10 * MB, "stopped after"), (MB, "more bytes than it announced")])
def test_a_body_that_stops_short_or_runs_long_leaves_nothing(folder: Path, declared: int, why: str) -> None:
    token = ticket(folder)
    status, reply = request(server(), "PUT", token, [b"x" * MB, b"y" * MB], "browser-a", length=declared)
    assert status == 400 and why in reply["error"]
    assert not list((folder / "source").iterdir()) and uploads.received(token) is None
    assert uploads.usage(files.browser_id("browser-a")) == 0              # the reservation is released


def test_a_ticket_dies_with_its_session_folder(folder: Path) -> None:
    token = ticket(folder)
    files.remove_session_folder(folder)
    assert uploads.lookup(token, files.browser_id("browser-a")) is None
