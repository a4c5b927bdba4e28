"""Nothing of a visitor outlives the visit: a visit that left (and did not come back within
the grace time) or sat idle has its session folder, links and state freed; a real
``ckptlab app`` removes its whole scratch folder on SIGTERM and on SIGINT."""
from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ckptlab.ui import files, lifecycle
from tests.e2e.conftest import free_port
from tests.ui.conftest import SAMPLES, new_app
from tests.ui.test_app import upload

ROOT = Path(__file__).resolve().parents[2]


def visit_with_upload() -> tuple[AppTest, lifecycle.Visit, Path]:
    """A visit that uploaded a file: its Visit record and the uploaded copy on disk."""
    at = upload(new_app(), "source", "mine.pt", (SAMPLES / "convnet_rgb.pt").read_bytes())
    stored = Path(at.session_state["_source_upload_file"][1])
    visit = next(v for v in lifecycle._visits.values() if v.folder and stored.is_relative_to(v.folder))
    assert {"_ckptlab_opened", "_source_upload_file", "_ckptlab_session_dir"} <= kept_state(visit)
    return at, visit, stored


def kept_state(visit: lifecycle.Visit) -> set[str]:
    """The page's own entries in the visit's session state (read as the janitor does, from
    outside its run): every key that is not a widget's."""
    inner = object.__getattribute__(visit.state(), "_state")
    return {k for k in inner.filtered_state if k not in inner._key_id_mapper}


def test_a_visit_that_left_is_freed_after_the_grace_time_unless_it_came_back() -> None:
    at, visit, stored = visit_with_upload()
    folder = Path(visit.folder)
    token = files.serve(stored, "mine.pt", owner=folder).rsplit("/", 1)[-1]
    visit.left_at = left = time.monotonic()
    assert lifecycle.sweep(now=left + 5, grace=10, idle=0, active=lambda s: False) == []      # within the grace
    assert lifecycle.sweep(now=left + 60, grace=10, idle=0, active=lambda s: True) == []      # it reconnected
    assert stored.exists()
    assert lifecycle.sweep(now=left + 60, grace=10, idle=0, active=lambda s: False) == [visit.session_id]
    assert not folder.exists() and files.lookup(token) is None
    assert not kept_state(visit)                                          # every cached object let go
    assert visit.session_id not in lifecycle._visits


def test_an_idle_visit_loses_its_files_and_state_and_its_next_run_says_so() -> None:
    at, visit, stored = visit_with_upload()
    folder = Path(visit.folder)
    assert lifecycle.sweep(now=visit.last_run + 10, grace=1, idle=60) == []
    assert lifecycle.sweep(now=visit.last_run + 61, grace=1, idle=60) == [visit.session_id]
    assert not folder.exists() and not stored.exists()
    assert not kept_state(visit)
    at.run()
    assert not at.exception
    assert any("idle" in i.value and "removed" in i.value for i in at.info), [i.value for i in at.info]
    at.run()
    assert not any("idle" in i.value for i in at.info)                    # said once


def started(args: list[str], port: int) -> tuple[subprocess.Popen, Path]:
    """``ckptlab app`` on ``port``, healthy; its server's scratch folder."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "ckptlab", "app", "--port", str(port), *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
                if reply.read().strip() == b"ok":
                    break
        except OSError:
            time.sleep(0.5)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("ckptlab app did not become healthy")
    child = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    scratch = [Path(p) for c in child for p in glob.glob(f"{files.temp_root()}/{files.SERVER_PREFIX}{c}-*")]
    assert len(scratch) == 1, (child, scratch)
    return proc, scratch[0]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_ckptlab_app_removes_its_scratch_when_stopped(stop: signal.Signals) -> None:
    proc, scratch = started([], free_port())
    try:
        visitor = scratch / "session-test" / "source"
        visitor.mkdir(parents=True)
        (visitor / "upload.pt").write_bytes(os.urandom(4096))          # what a visitor left there
        proc.send_signal(stop)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()[-2000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not scratch.exists()


def test_ckptlab_app_listens_on_localhost_by_default() -> None:
    port = free_port()
    proc, _ = started([], port)
    try:
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
        local = [line.split()[3] for line in listening.splitlines() if line.strip()]      # Local Address:Port
        assert local and all(a == f"127.0.0.1:{port}" for a in local), listening
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        err = proc.stderr.read()
    assert "--address 0.0.0.0" in err, err[-1000:]
