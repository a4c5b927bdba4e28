"""``exclusive=True``: an output never replaces a file, even one another writer made mid-write.

The web app writes into server folders where several visitors pick names; checking "does it
exist?" before a minutes-long write leaves a window in which another visitor's file can
appear. The exclusive commit links each output into place (``link`` refuses an existing
name atomically), so of two writers racing for one name exactly one wins and the other's
write fails in one line, leaving the winner's file as it was and no temporary file.
"""
from __future__ import annotations

import os
import stat
import threading

import pytest
import torch

from ckptlab.errors import MergeError
from ckptlab.io.tensor_info import TensorInfo
from ckptlab.io.writers import OutTensor, write_tensors


def tensors(n: int, value: float = 1.0, during=None) -> list[OutTensor]:
    def make(i):
        def produce():
            if during is not None and i == n - 1:
                during()
            return torch.full((256,), value + i)
        return produce
    return [OutTensor(f"t{i}", TensorInfo((256,), torch.float32, 1024), make(i)) for i in range(n)]


@pytest.mark.parametrize("name", ["new.safetensors", "new.pt"])
def test_an_exclusive_write_makes_a_new_file_like_any_write(tmp_path, name):
    (tmp_path / "plain").mkdir()
    (tmp_path / "exclusive").mkdir()
    plain, exclusive = tmp_path / "plain" / name, tmp_path / "exclusive" / name
    write_tensors(tensors(3), plain)
    write_tensors(tensors(3), exclusive, exclusive=True)
    assert exclusive.read_bytes() == plain.read_bytes()
    assert stat.S_IMODE(os.stat(exclusive).st_mode) == stat.S_IMODE(os.stat(plain).st_mode)
    assert [p.name for p in exclusive.parent.iterdir()] == [name]


def test_a_file_that_appears_during_the_write_is_not_replaced(tmp_path):
    out = tmp_path / "merged.safetensors"
    theirs = b"another visitor's file"
    with pytest.raises(MergeError, match="exists already \\(nothing was overwritten\\)") as err:
        write_tensors(tensors(4, during=lambda: out.write_bytes(theirs)), out, exclusive=True)
    assert "\n" not in str(err.value)
    assert out.read_bytes() == theirs
    assert [p.name for p in tmp_path.iterdir()] == ["merged.safetensors"]  # no temporary file


def test_a_sharded_exclusive_write_takes_back_its_shards_when_the_index_is_taken(tmp_path):
    out = tmp_path / "model.safetensors"
    index = tmp_path / "model.safetensors.index.json"
    with pytest.raises(MergeError, match="exists already"):
        write_tensors(tensors(6, during=lambda: index.write_text("{}")), out, max_shard_size=2048, exclusive=True)
    assert [p.name for p in tmp_path.iterdir()] == [index.name] and index.read_text() == "{}"


def test_two_writers_racing_for_one_name_one_wins_and_the_other_fails(tmp_path):
    out = tmp_path / "merged.pt"
    both_writing = threading.Barrier(2, timeout=60)
    results: dict[float, object] = {}

    def writer(value: float) -> None:
        try:
            write_tensors(tensors(3, value, during=both_writing.wait), out, exclusive=True)
            results[value] = "wrote"
        except MergeError as exc:
            results[value] = exc

    threads = [threading.Thread(target=writer, args=(v,)) for v in (10.0, 20.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(map(type, results.values()), key=str) == sorted([str, MergeError], key=str), results
    winner = next(v for v, r in results.items() if r == "wrote")
    from ckptlab import open as open_ckpt

    assert torch.equal(open_ckpt(out).tensor("t0"), torch.full((256,), winner))
    assert [p.name for p in tmp_path.iterdir()] == ["merged.pt"]


def test_without_exclusive_a_write_still_replaces_the_file(tmp_path):
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"old")
    write_tensors(tensors(2), out)
    assert out.read_bytes() != b"old"
