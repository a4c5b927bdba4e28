"""``LazyTensor.file_span`` lets writers copy bytes file to file: it must point at exactly
the bytes ``load()`` returns, and only exist where that is true (contiguous, uncompressed)."""
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import ckptlab


def _tensors() -> dict[str, torch.Tensor]:
    base = torch.arange(60, dtype=torch.float32).reshape(6, 10)
    return {
        "plain": torch.randn(4, 5),
        "half": torch.randn(7).half(),
        "scalar": torch.tensor(3, dtype=torch.int64),
        "empty": torch.empty(0, 3),
        "row_slice": base[2:4],          # contiguous view at an offset into a shared storage
        "transposed": base.t(),          # not C-contiguous: no span
        "column": base[:, 1],            # strided: no span
    }


def _span_bytes(span: tuple) -> bytes:
    path, offset, nbytes = span[:3]  # a 4th item, when there, is the CRC (tests/writers check it)
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(nbytes)


def _raw(t: torch.Tensor) -> bytes:
    return t.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b""


@pytest.mark.parametrize("kind", ["zip", "legacy", "safetensors"])
def test_spans_point_at_the_loaded_bytes(tmp_path: Path, kind: str):
    tensors = _tensors()
    path = tmp_path / f"ck.{kind}"
    if kind == "safetensors":
        tensors = {k: v.contiguous() for k, v in tensors.items()}
        save_file(tensors, path)
    else:
        torch.save(tensors, path, _use_new_zipfile_serialization=kind == "zip")
    ck = ckptlab.open(path)
    spanned = set()
    for key in ck.keys():
        span = ck.lazy(key).file_span
        if span is not None:
            spanned.add(key)
            assert span[2] == ck.info(key).nbytes
            assert _span_bytes(span) == _raw(ck.tensor(key)), key
    expected = {"plain", "half", "scalar", "row_slice"}
    if kind == "safetensors":
        expected |= {"transposed", "column"}  # saved contiguous copies
    assert spanned == expected


def test_a_deflated_archive_offers_no_span(tmp_path: Path):
    import zipfile

    src = tmp_path / "stored.pt"
    torch.save({"w": torch.randn(3, 3)}, src)
    packed = tmp_path / "deflated.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    ck = ckptlab.open(packed)
    assert ck.lazy("w").file_span is None
    assert torch.equal(ck.tensor("w"), torch.load(src)["w"])
