"""Converted tensors reach the file byte for byte, however the writer cuts its writes.

The writer sends large tensors out in ``pwrite`` calls of at most ``sink.WRITE_PIECE``
bytes (whole-tensor writes were several times slower on ext4). These tests give it tensors
larger than a piece, at offsets that are not page- or piece-aligned, through real remaps
with transpose / permute / chunk / rope / cat ops read from a mapped source file, and
compare every output with torch doing the same ops in memory; a failure part-way through
leaves no output.
"""
from __future__ import annotations

import os
import zipfile

import pytest
import torch
from safetensors.torch import save_file

import ckptlab
from ckptlab.errors import CheckpointError
from ckptlab.io.writers import sink

PIECE = sink.WRITE_PIECE


def _source(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {
        "a.w": torch.randn(300, 517, generator=g),  # 620 KB: several pieces and a remainder
        "c.w": torch.randn(6, 50, 70, generator=g),  # > 2-D, permuted
        "q.qkv": torch.randn(3 * 128, 201, generator=g),  # chunked into three
        "r.w": torch.randn(256, 96, generator=g),  # rotary permute, 4 heads
        "h.w": torch.randn(130, 77, generator=g).half(),  # another dtype (safetensors orders by itemsize)
        "n.w": torch.randint(-2**40, 2**40, (33, 1001), generator=g),  # int64, 264 KB
        "z.w": torch.empty(0, 5),  # zero-size
        "p.0": torch.randn(64, 1024, generator=g), "p.1": torch.randn(64, 1024, generator=g),  # cat
        "emb": torch.randn(777, 129, generator=g),  # unchanged: copied file to file
        "tiny": torch.randn(3),
    }
    path = tmp_path / "src.safetensors"
    save_file(tensors, path)
    return path, tensors


RECIPE = {"convert": [
    {"from": "a.w", "to": "a.w", "ops": ["transpose"]},
    {"from": "c.w", "to": "c.w", "ops": [{"permute": [2, 0, 1]}]},
    {"from": "q.qkv", "to": ["q.q", "q.k", "q.v"], "ops": [{"chunk": 0}]},
    {"from": "r.w", "to": "r.w", "ops": [{"rope_permute": {"heads": 4}}]},
    {"from": "h.w", "to": "h.w", "ops": ["transpose"]},
    {"from": "n.w", "to": "n.w", "ops": ["transpose"]},
    {"from": "z.w", "to": "z.w", "ops": ["transpose"]},
    {"from": ["p.0", "p.1"], "to": "p", "ops": [{"cat": 1}]},
]}


def _expected(src: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What torch gives for the recipe's ops, in memory."""
    r = src["r.w"]
    q, k, v = src["q.qkv"].chunk(3, 0)
    out = {
        "a.w": src["a.w"].t(), "c.w": src["c.w"].permute(2, 0, 1), "q.q": q, "q.k": k, "q.v": v,
        "r.w": r.reshape(4, 256 // 4 // 2, 2, 96).transpose(1, 2).reshape(256, 96),
        "h.w": src["h.w"].t(), "n.w": src["n.w"].t(), "z.w": src["z.w"].t(),
        "p": torch.cat([src["p.0"], src["p.1"]], 1), "emb": src["emb"], "tiny": src["tiny"],
    }
    return {k: t.contiguous() for k, t in out.items()}


def _target(expected):
    return {k: torch.zeros(t.shape, dtype=t.dtype) for k, t in expected.items()}


def _bytes(t: torch.Tensor) -> bytes:
    return t.contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b""


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_a_remap_with_ops_writes_what_torch_computes_bit_for_bit(tmp_path, suffix):
    path, src = _source(tmp_path)
    expected = _expected(src)
    assert _bytes(expected["a.w"]).__len__() > 4 * PIECE  # the piece loop runs several times
    out = tmp_path / f"out{suffix}"
    report = ckptlab.remap(ckptlab.open(path), _target(expected), out, recipe=RECIPE, auto="none")
    assert report.summary["converted"] == 10 and report.summary["exact"] == 2
    written = ckptlab.open(out)
    assert sorted(written.keys()) == sorted(expected)
    for key, want in expected.items():
        got = written.tensor(key)
        assert got.dtype == want.dtype and got.shape == want.shape, key
        assert _bytes(got) == _bytes(want), key
    if suffix == ".pt":
        with zipfile.ZipFile(out) as zf:
            assert zf.testzip() is None  # every member's CRC-32 matches its bytes
        loaded = torch.load(out, weights_only=True)
        assert all(torch.equal(loaded[k], expected[k]) for k in expected)


def test_the_sink_cuts_writes_into_pieces_and_keeps_every_byte(tmp_path, monkeypatch):
    """Parts of every size around the piece size, at an odd starting offset, one and several
    per call: the file is their concatenation and no syscall writes more than a piece."""
    sizes_seen: list[int] = []
    real_pwrite, real_pwritev = os.pwrite, os.pwritev
    monkeypatch.setattr(os, "pwrite", lambda fd, data, pos: (sizes_seen.append(len(data)),
                                                             real_pwrite(fd, data, pos))[1])
    monkeypatch.setattr(os, "pwritev", lambda fd, views, pos: (sizes_seen.append(sum(len(v) for v in views)),
                                                               real_pwritev(fd, views, pos))[1])
    g = torch.Generator().manual_seed(1)

    def blob(n):
        return torch.randint(0, 256, (n,), dtype=torch.uint8, generator=g).numpy().tobytes()

    calls = [(blob(13),), (blob(PIECE - 1),), (blob(PIECE),), (blob(PIECE + 1),), (blob(3 * PIECE + 7),),
             (blob(PIECE // 2), blob(PIECE), blob(5)), tuple(blob(999) for _ in range(200)), (blob(1),)]
    path = tmp_path / "out.bin"
    with open(path, "w+b") as f:
        s = sink.Sink(f)
        for parts in calls:
            s.write(*parts)
        s.patch(3, b"XYZ")
        s.flush()
    want = bytearray(b"".join(p for parts in calls for p in parts))
    want[3:6] = b"XYZ"
    assert path.read_bytes() == bytes(want)
    assert max(sizes_seen) <= PIECE and len(sizes_seen) > 8


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_a_source_cut_short_part_way_through_leaves_no_output(tmp_path, suffix):
    """The source loses its tail after it was opened: the remap fails on a late tensor, once
    earlier ones were written, and the old output stays as it was with no temp file beside it."""
    path, src = _source(tmp_path)
    expected = _expected(src)
    source = ckptlab.open(path)
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / f"model{suffix}"
    out.write_bytes(b"the old output")
    with open(path, "r+b") as f:  # the last tensors' bytes are gone
        f.truncate(os.path.getsize(path) - 4096)
    with pytest.raises(CheckpointError) as err:
        ckptlab.remap(source, _target(expected), out, recipe=RECIPE, auto="none")
    assert "\n" not in str(err.value)
    assert os.listdir(folder) == [out.name]
    assert out.read_bytes() == b"the old output"
