"""Hostile and broken files: each gets its exact one-line error, and nothing runs or is written."""
from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile

import pytest
import torch

import ckptlab
from ckptlab.errors import (
    ContainerError,
    LimitError,
    UnreadableFileError,
    UnsafePickleError,
)


def _torch_zip_with_pickle(path, payload: bytes, source: bytes | None = None) -> None:
    """A well-formed torch archive (``source``'s, by default a tiny one) whose data.pkl is ``payload``."""
    buf = io.BytesIO(source)
    if source is None:
        torch.save({"w": torch.ones(2)}, buf)
    with zipfile.ZipFile(buf) as zin, zipfile.ZipFile(path, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, payload if info.filename.endswith("data.pkl") else zin.read(info))


class _Call:
    """Pickles as a call of ``func(*args)``: the shape of every pickle exploit."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("func", [os.system, eval, exec, getattr(os, "popen")])
def test_a_pickle_that_calls_a_dangerous_function_is_refused_and_nothing_runs(tmp_path, func):
    marker = tmp_path / "pwned"
    command = f"touch {marker}" if func in (os.system, os.popen) else f"open({str(marker)!r}, 'w')"
    path = tmp_path / "evil.pt"
    _torch_zip_with_pickle(path, pickle.dumps({"w": _Call(func, command)}, protocol=2))
    with pytest.raises(UnsafePickleError, match=rf"refusing to call \S+\.{func.__name__}") as err:
        ckptlab.open(path)
    assert not marker.exists()
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_subprocess_classes_are_refused_too(tmp_path):
    import subprocess

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Call(subprocess.Popen, ["touch", str(marker)]), protocol=4))
    with pytest.raises(UnsafePickleError, match="subprocess.Popen"):
        ckptlab.open(path)
    assert not marker.exists()


def test_an_unknown_lowercase_function_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    _torch_zip_with_pickle(path, pickle.dumps({"w": _Call(os.path.join, "a", "b")}, protocol=2))
    with pytest.raises(UnsafePickleError, match="posixpath.join|ntpath.join"):
        ckptlab.open(path)


def test_a_legacy_file_with_a_payload_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil_legacy.pt"
    torch.save({"w": torch.ones(2), "x": _Call(os.system, f"touch {marker}")}, path,
               _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafePickleError, match="os.system|posix.system"):
        ckptlab.open(path)
    assert not marker.exists()


# -- broken files -----------------------------------------------------------------------------
def _saved_bytes(**kw) -> bytes:
    buf = io.BytesIO()
    torch.save({"w": torch.arange(1000.0)}, buf, **kw)
    return buf.getvalue()


def _safetensors_bytes() -> bytes:
    from safetensors.torch import save

    return save({"w": torch.arange(1000.0)})


CASES = {
    "empty": (b"", UnreadableFileError, "empty file"),
    "random": (bytes(range(7, 250)) * 9, UnreadableFileError, "not a checkpoint format"),
    "truncated_zip": (_saved_bytes()[:2000], UnreadableFileError, "truncated or corrupt zip"),
    "truncated_legacy": (_saved_bytes(_use_new_zipfile_serialization=False)[:300], UnreadableFileError,
                         "truncated"),
    "truncated_legacy_data": (_saved_bytes(_use_new_zipfile_serialization=False)[:-100], UnreadableFileError,
                              "truncated: storage"),
    "truncated_safetensors": (_safetensors_bytes()[:-100], UnreadableFileError, "invalid safetensors"),
    "truncated_safetensors_header": (_safetensors_bytes()[:40], UnreadableFileError, "truncated safetensors"),
    "huge_safetensors_header": (struct.pack("<Q", 200_000_000) + b"{" + b" " * 100, UnreadableFileError,
                                "exceeds the 100000000 byte limit"),
    "pickled_list": (pickle.dumps([1, 2, 3]), ContainerError, "no tensors found .*list"),
    "pickled_string": (pickle.dumps("hello"), ContainerError, "no tensors found .*str"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_broken_files_get_one_line_errors(tmp_path, name):
    data, error, message = CASES[name]
    path = tmp_path / f"{name}.pt"
    path.write_bytes(data)
    with pytest.raises(error, match=message) as err:
        ckptlab.open(path)
    assert type(err.value) is error
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_safetensors_with_bad_offsets(tmp_path):
    header = b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,64]}}'
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    with pytest.raises(UnreadableFileError, match="invalid safetensors"):
        ckptlab.open(path)


def test_missing_file_and_plain_directory(tmp_path):
    with pytest.raises(UnreadableFileError, match="no such file"):
        ckptlab.open(tmp_path / "nope.pt")
    with pytest.raises(UnreadableFileError, match="no .metadata"):
        ckptlab.open(tmp_path)


def test_a_zip_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(UnreadableFileError, match="no data.pkl"):
        ckptlab.open(path)


def test_a_zip_bomb_is_not_inflated(tmp_path):
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb/data.pkl", b"\x00" * (20 * 2**20))
    assert path.stat().st_size < 100_000
    with pytest.raises(UnreadableFileError, match="zip bomb"):
        ckptlab.open(path)


def test_a_tensor_view_beyond_its_storage(tmp_path):
    payload = _saved_bytes()
    with zipfile.ZipFile(io.BytesIO(payload)) as z:
        pkl = z.read("archive/data.pkl")
    # storage of 1000 floats, view of shape (1000,) moved to offset 5: past the end
    path = tmp_path / "overrun.pt"
    forged = pkl.replace(b"K\x00M\xe8\x03\x85", b"K\x05M\xe8\x03\x85", 1)
    assert forged != pkl
    _torch_zip_with_pickle(path, forged, payload)
    with pytest.raises(UnreadableFileError, match="reaches past its storage"):
        ckptlab.open(path)


def _deeply_nested_pickle(depth: int, leaf: bytes = b"N") -> bytes:
    """{'a': {'a': ... leaf}} ``depth`` levels deep, written opcode by opcode (pickle itself would recurse)."""
    return b"\x80\x02" + b"}X\x01\x00\x00\x00a" * depth + leaf + b"s" * depth + b"."


@pytest.mark.parametrize("depth", [100, 50_000])
def test_deep_nesting_gets_an_error_not_a_recursion_crash(tmp_path, depth):
    path = tmp_path / "deep.pkl"
    path.write_bytes(_deeply_nested_pickle(depth))
    # shallow: read, and simply holds no tensors; past MAX_PICKLE_DEPTH: refused while unpickling
    error, message = (ContainerError, "no tensors found") if depth < 500 else (LimitError, "MAX_PICKLE_DEPTH")
    with pytest.raises(error, match=message):
        ckptlab.open(path)


def test_a_safetensors_header_length_that_looks_like_a_pickle_opcode(tmp_path):
    from safetensors.torch import save_file

    # pad the metadata so the 8-byte header length is 0x0580: its first bytes read b"\x80\x05"
    path = tmp_path / "padded.safetensors"
    for pad in range(1200, 1500):
        save_file({"w": torch.ones(3)}, str(path), metadata={"pad": "x" * pad})
        if path.read_bytes()[:2] == b"\x80\x05":
            break
    assert path.read_bytes()[:2] == b"\x80\x05"
    assert torch.equal(ckptlab.open(path).tensor("w"), torch.ones(3))


def test_tensor_classes_cannot_be_called_to_allocate(tmp_path):
    # GLOBAL torch.FloatTensor, (1000,), REDUCE: with a bigger number torch would allocate terabytes
    path = tmp_path / "alloc.pkl"
    path.write_bytes(b"\x80\x02ctorch\nFloatTensor\nM\xe8\x03\x85R.")
    with pytest.raises(UnreadableFileError, match="corrupt pickle .*not callable"):
        ckptlab.open(path)


def test_meta_tensors_list_but_have_no_values(tmp_path):
    path = tmp_path / "meta.pt"
    torch.save({"w": torch.empty(3, 4, device="meta")}, path)
    ck = ckptlab.open(path)
    assert ck.info("w").shape == (3, 4)
    with pytest.raises(ckptlab.CheckpointError, match="meta device"):
        ck.tensor("w")
