""".pt archives written by our own stored-zip writer: CRCs right (torch does not check them,
so we do), known CRCs trusted and copied in the kernel, zip64 records readable by torch."""
from __future__ import annotations

import os
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import pytest
import safetensors.torch
import torch

import ckptlab
from ckptlab.io.checkpoint import Checkpoint
from ckptlab.io.tensor_info import TensorInfo
from ckptlab.io.writers import FileSpan, OutTensor, write_tensors
from ckptlab.io.writers.entries import group_tensors
from ckptlab.io.writers.progress import ByteProgress
from ckptlab.io.writers.torchzip import write_torch_zip


def raw(t: torch.Tensor) -> bytes:
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"conv.weight": torch.randn(8, 3, 3, 3, generator=g), "conv.bias": torch.randn(8, generator=g),
            "steps": torch.arange(5), "half": torch.randn(33, generator=g).half()}


def member_data(path, info: zipfile.ZipInfo) -> int:
    """Absolute offset of a member's data (from its local header)."""
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
    return info.header_offset + 30 + name_len + extra_len


def test_a_whole_member_span_carries_the_member_crc_and_a_partial_view_none(tmp_path):
    base = torch.arange(40, dtype=torch.float32)
    torch.save({"whole": torch.randn(4, 5), "part": base[10:20], "all": base}, tmp_path / "s.pt")
    ck = ckptlab.open(tmp_path / "s.pt")
    for key in ("whole", "all"):
        path, offset, nbytes, crc = ck.lazy(key).file_span
        with open(path, "rb") as f:
            f.seek(offset)
            assert crc == zlib.crc32(f.read(nbytes)), key
    assert len(ck.lazy("part").file_span) == 3  # 40 bytes of a 160-byte member: its CRC is not theirs


@pytest.mark.parametrize("suffix", [".pt", ".pth"])
def test_remap_from_a_torch_zip_keeps_every_byte_and_every_crc(tmp_path, suffix):
    src = tensors()
    torch.save(src, tmp_path / "src.pt")
    source = ckptlab.open(tmp_path / "src.pt")
    target = Checkpoint.from_mapping({"model." + k: torch.empty_like(v, device="meta") for k, v in src.items()})
    out = tmp_path / f"out{suffix}"
    ckptlab.remap(source, target, out, recipe={"rules": [{"add_prefix": "model."}]}, auto="none")
    back = torch.load(out, weights_only=True)
    assert {k: raw(v) for k, v in back.items()} == {"model." + k: raw(v) for k, v in src.items()}
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None
        for info in zf.infolist():
            assert member_data(out, info) % 64 == 0, info.filename


def test_a_flipped_byte_is_caught_by_the_crc_check_the_tests_rely_on(tmp_path):
    out = tmp_path / "m.pt"
    write_tensors([OutTensor(k, TensorInfo.of(v), lambda v=v: v) for k, v in tensors().items()], out)
    with zipfile.ZipFile(out) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith("data/0"))
    at = member_data(out, info) + 7
    data = bytearray(out.read_bytes())
    data[at] ^= 0x10
    out.write_bytes(data)
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() == info.filename  # torch 2.x loads it regardless: it skips CRC checks


def test_a_known_crc_is_trusted_not_recomputed(tmp_path):
    """The fast path never hashes: a span's stated CRC lands in the archive as given."""
    t = torch.randn(300)
    raw_file = tmp_path / "raw.bin"
    raw_file.write_bytes(b"head" + raw(t))
    true_crc = zlib.crc32(raw(t))
    told = true_crc ^ 0xFFFF
    out = tmp_path / "m.pt"
    write_tensors([OutTensor("a", TensorInfo.of(t), _never, span=FileSpan(str(raw_file), 4, t.nbytes, told)),
                   OutTensor("b", TensorInfo.of(t), _never, span=FileSpan(str(raw_file), 4, t.nbytes))], out)
    with zipfile.ZipFile(out) as zf:
        crcs = {i.filename.rsplit("/", 2)[-1]: i.CRC for i in zf.infolist() if "/data/" in i.filename}
    assert crcs == {"0": told, "1": true_crc}  # without a CRC it is computed on the way
    back = torch.load(out, weights_only=True)
    assert raw(back["a"]) == raw(back["b"]) == raw(t)


def _never() -> torch.Tensor:
    raise AssertionError("the tensor was loaded although its bytes could be copied")


def test_zip64_records_are_read_by_torch_and_zipfile(tmp_path):
    """Sizes and offsets past the zip64 limit (lowered here, 4 GB in real use) use zip64 fields."""
    src = tensors()
    raw_file = tmp_path / "raw.bin"
    raw_file.write_bytes(raw(src["conv.weight"]))
    entries = [OutTensor(k, TensorInfo.of(v), lambda v=v: v) for k, v in src.items()]
    entries[0] = OutTensor("conv.weight", entries[0].info, _never,
                           span=FileSpan(str(raw_file), 0, src["conv.weight"].nbytes))
    out = tmp_path / "m.pt"
    with open(out, "wb+") as f:
        write_torch_zip(f, group_tensors(entries, by_itemsize=False), None, "m", ByteProgress(None, 0),
                        zip64_limit=16)
    end = out.read_bytes()[-22:]
    assert end[:4] == b"PK\x05\x06" and struct.unpack("<II", end[12:20]) == (0xFFFFFFFF, 0xFFFFFFFF)
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None
        assert all(i.extract_version == 45 for i in zf.infolist())  # every size or offset is past 16
    back = torch.load(out, weights_only=True)
    assert {k: raw(v) for k, v in back.items()} == {k: raw(v) for k, v in src.items()}
    mapped = torch.load(out, weights_only=True, mmap=True)
    assert {k: raw(v) for k, v in mapped.items()} == {k: raw(v) for k, v in src.items()}


def test_a_non_ascii_file_name_makes_a_utf8_archive_torch_reads(tmp_path):
    out = tmp_path / "modèle.pt"
    src = tensors()
    write_tensors([OutTensor(k, TensorInfo.of(v), lambda v=v: v) for k, v in src.items()], out)
    with zipfile.ZipFile(out) as zf:
        assert zf.infolist()[0].filename.startswith("modèle/") and zf.testzip() is None
    assert {k: raw(v) for k, v in torch.load(out, weights_only=True).items()} == {k: raw(v) for k, v in src.items()}


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_span_on_another_filesystem_is_copied_through_a_buffer(tmp_path, suffix):
    """copy_file_range refuses to cross filesystems (EXDEV): the bytes still arrive, CRC and all."""
    t = torch.randn(70_000)
    elsewhere = tmp_path / "raw.bin"
    if os.path.isdir("/dev/shm"):
        elsewhere = Path(tempfile.mkdtemp(dir="/dev/shm")) / "raw.bin"
    try:
        elsewhere.write_bytes(b"x" * 3 + raw(t))
        out = tmp_path / f"m{suffix}"
        write_tensors([OutTensor("w", TensorInfo.of(t), _never, span=FileSpan(str(elsewhere), 3, t.nbytes))], out)
    finally:
        elsewhere.unlink()
        if elsewhere.parent != tmp_path:
            elsewhere.parent.rmdir()
    if suffix == ".pt":
        with zipfile.ZipFile(out) as zf:
            assert zf.testzip() is None
    back = torch.load(out, weights_only=True) if suffix == ".pt" else safetensors.torch.load_file(out)
    assert raw(back["w"]) == raw(t)


@pytest.mark.parametrize("crc", [None, 123])
def test_a_pt_span_past_the_end_of_its_file_fails_cleanly_with_or_without_a_crc(tmp_path, crc):
    raw_file = tmp_path / "raw.bin"
    raw_file.write_bytes(b"\0" * 10)
    entry = OutTensor("a", TensorInfo((8,), torch.float32, 32), _never, span=FileSpan(str(raw_file), 0, 32, crc))
    with pytest.raises(ckptlab.MergeError, match="file ends inside tensor data"):
        write_tensors([entry], tmp_path / "m.pt")
    assert sorted(os.listdir(tmp_path)) == ["raw.bin"]
