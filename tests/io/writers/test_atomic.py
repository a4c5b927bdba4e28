"""Outputs appear whole or not at all, with the mode the umask gives (or the one they had).

Shards and index are moved into place together only once all are written; a failure before
or during the moves leaves the old files as they were; no temporary file survives an
exception, Ctrl-C or SIGTERM.
"""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import ckptlab
from ckptlab.errors import CheckpointError, MergeError
from ckptlab.io.tensor_info import TensorInfo
from ckptlab.io.writers import OutTensor, atomic, write_tensors
from ckptlab.recipe.model import Recipe
from tests.paths import ROOT

SAMPLES = ROOT / "sample_ckpts"


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def tensors(n: int, fail_at: int | None = None, exc: type[BaseException] = RuntimeError) -> list[OutTensor]:
    def make(i):
        def produce():
            if i == fail_at:
                raise exc(f"tensor {i} cannot be made")
            return torch.full((256,), float(i))
        return produce
    return [OutTensor(f"t{i}", TensorInfo((256,), torch.float32, 1024), make(i)) for i in range(n)]


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda m: os.umask(m)
    os.umask(old)


@pytest.mark.parametrize("mask,expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_outputs_follow_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    assert atomic.current_umask() == mask
    rep = ckptlab.remap(SAMPLES / "convnet_rgb_ddp.pt", SAMPLES / "convnet_rgb.pt", tmp_path / "a.safetensors")
    ckptlab.remap(SAMPLES / "convnet_rgb_ddp.pt", SAMPLES / "convnet_rgb.pt", tmp_path / "b.pt")
    write_tensors(tensors(4), tmp_path / "sharded.safetensors", max_shard_size=2048)
    rep.save(tmp_path / "report.json")
    Recipe.from_dict({"rules": [{"strip_prefix": "module."}]}).save(tmp_path / "r.yaml")
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["a.safetensors", "b.pt", "r.yaml", "report.json", "sharded-00001-of-00002.safetensors",
                       "sharded-00002-of-00002.safetensors", "sharded.safetensors.index.json"]
    assert {name: oct(mode(tmp_path / name)) for name in written} == {name: oct(expected) for name in written}


def test_an_overwritten_file_keeps_its_mode(tmp_path, umask):
    umask(0o077)
    out = tmp_path / "merged.safetensors"
    ckptlab.remap(SAMPLES / "convnet_rgb_ddp.pt", SAMPLES / "convnet_rgb.pt", out)
    os.chmod(out, 0o640)
    ckptlab.remap(SAMPLES / "convnet_rgb_ddp.pt", SAMPLES / "convnet_rgb.pt", out)
    assert mode(out) == 0o640
    report = tmp_path / "report.csv"
    report.write_text("old")
    os.chmod(report, 0o604)
    ckptlab.remap(SAMPLES / "convnet_rgb_ddp.pt", SAMPLES / "convnet_rgb.pt", out).save(report)
    assert mode(report) == 0o604 and report.read_text() != "old"
    os.chmod(out, 0o444)  # read-only: replaced all the same (the folder is writable), still read-only
    ckptlab.remap(SAMPLES / "convnet_rgb_ddp.pt", SAMPLES / "convnet_rgb.pt", out)
    assert mode(out) == 0o444


def test_remapping_a_file_onto_itself_keeps_its_mode(tmp_path, umask):
    umask(0o077)
    src = tmp_path / "ckpt.pt"
    src.write_bytes((SAMPLES / "convnet_rgb_ddp.pt").read_bytes())
    os.chmod(src, 0o644)
    ckptlab.remap(src, SAMPLES / "convnet_rgb.pt", src)
    assert mode(src) == 0o644
    assert ckptlab.open(src).keys() == ckptlab.open(SAMPLES / "convnet_rgb.pt").keys()


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_a_failure_in_the_last_shard_leaves_the_old_shards_and_index_untouched(tmp_path, exc):
    out = tmp_path / "model.safetensors"
    write_tensors(tensors(6), out, max_shard_size=2048)  # three shards of two tensors
    before = listing(tmp_path)
    assert len(before) == 4
    with pytest.raises(exc):
        write_tensors(tensors(6, fail_at=5, exc=exc), out, max_shard_size=2048)
    assert listing(tmp_path) == before  # same files, same bytes, no temporary file


def test_a_move_that_fails_halfway_puts_the_old_files_back(tmp_path, monkeypatch):
    out = tmp_path / "model.pt"
    write_tensors(tensors(6), out, max_shard_size=2048)
    before = listing(tmp_path)
    real_replace, calls = os.replace, []

    def replace_failing_third(src, dst):  # the third move (shard 3) hits a full disk
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace_failing_third)
    new = [OutTensor(t.key, t.info, (lambda: torch.zeros(256))) for t in tensors(6)]
    with pytest.raises(MergeError, match="cannot move the output into place"):
        write_tensors(new, out, max_shard_size=2048)
    monkeypatch.undo()
    assert len(calls) >= 3
    assert listing(tmp_path) == before


def test_a_new_sharded_output_that_fails_to_move_leaves_nothing(tmp_path, monkeypatch):
    real_replace, calls = os.replace, []

    def replace_failing_last(src, dst):
        calls.append(dst)
        if str(dst).endswith(".index.json"):
            raise OSError(13, "Permission denied")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace_failing_last)
    with pytest.raises(MergeError):
        write_tensors(tensors(4), tmp_path / "m.safetensors", max_shard_size=2048)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_in_the_way_is_refused_before_any_file_moves(tmp_path):
    out = tmp_path / "model.safetensors"
    write_tensors(tensors(4), out, max_shard_size=2048)
    before = listing(tmp_path)
    (tmp_path / "model.safetensors.index.json").unlink()
    (tmp_path / "model.safetensors.index.json").mkdir()
    with pytest.raises(MergeError, match="that is a folder"):
        write_tensors([OutTensor(t.key, t.info, (lambda: torch.zeros(256))) for t in tensors(4)], out,
                      max_shard_size=2048)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == {k: v for k, v in before.items() if not k.endswith(".index.json")}


def test_a_text_file_that_cannot_be_written_leaves_nothing(tmp_path):
    (tmp_path / "r.yaml").mkdir()
    with pytest.raises(CheckpointError, match="that is a folder"):
        Recipe.from_dict({}).save(tmp_path / "r.yaml")
    assert [p.name for p in tmp_path.iterdir()] == ["r.yaml"]


# Both scripts write six tensors whose fourth stops for a minute after touching "ready".
SLOW_WRITER = textwrap.dedent("""
    import signal, sys, threading, time, torch
    from pathlib import Path
    from ckptlab.io.tensor_info import TensorInfo
    from ckptlab.io.writers import OutTensor, write_tensors
    folder = Path(sys.argv[1])
    def slow(i):
        def produce():
            if i == 3:
                (folder.parent / "ready").touch()
                time.sleep(60)
            return torch.full((256,), float(i))
        return produce
""")

SIGTERM_SCRIPT = SLOW_WRITER + textwrap.dedent("""
    outs = [OutTensor(f"t{i}", TensorInfo((256,), torch.float32, 1024), slow(i)) for i in range(6)]
    write_tensors(outs, folder / sys.argv[2], max_shard_size=2048)
""")


@pytest.mark.parametrize("name", ["model.safetensors", "model.pt"])
def test_sigterm_mid_write_removes_the_temporary_files(tmp_path, name):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "keep.txt").write_text("an unrelated file")
    write_tensors(tensors(6), folder / name, max_shard_size=2048)
    before = listing(folder)
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_SCRIPT, str(folder), name], cwd=ROOT)
    deadline = time.monotonic() + 60
    while not (tmp_path / "ready").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the writer never reached tensor 3"
        time.sleep(0.05)
    assert any(p.name.endswith(".tmp") for p in folder.iterdir())  # it was mid-write
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert listing(folder) == before


THREAD_SCRIPT = SLOW_WRITER + textwrap.dedent("""
    def work():
        outs = [OutTensor(f"t{i}", TensorInfo((256,), torch.float32, 1024), slow(i)) for i in range(6)]
        write_tensors(outs, folder / "m.safetensors", max_shard_size=2048)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))  # a server's own graceful stop (Streamlit's)
    threading.Thread(target=work, daemon=True).start()     # the write runs in a session thread
    while True:
        time.sleep(0.05)
""")


def test_a_write_in_a_server_thread_leaves_nothing_when_the_server_stops_on_sigterm(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", THREAD_SCRIPT, str(folder)], cwd=ROOT)
    deadline = time.monotonic() + 60
    while not (tmp_path / "ready").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the writer never reached tensor 3"
        time.sleep(0.05)
    assert len(list(folder.iterdir())) == 4  # three shards and the index, all temporary
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert list(folder.iterdir()) == []
