"""torch.save zip archives: every dtype and layout, read lazily, bytes and strides exact."""
from __future__ import annotations

import zipfile

import pytest
import torch
from tensor_cases import (
    assert_matches_torch_load,
    dtype_cases,
    layout_cases,
    same_bytes,
    savable_dtypes,
)

import ckptlab
from ckptlab.io.formats.region import Region


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tensors = {**dtype_cases(savable_dtypes()), **layout_cases()}
    path = tmp_path_factory.mktemp("zip") / "all.pt"
    torch.save(tensors, path)
    return path, tensors


def test_keys_shapes_dtypes_come_from_headers_alone(saved, reads):
    path, tensors = saved
    ck = ckptlab.open(path)
    assert ck.format == "torch-zip" and ck.container == ""
    assert ck.keys() == list(tensors)
    for key, t in tensors.items():
        info = ck.info(key)
        assert (info.shape, info.dtype, info.nbytes) == (tuple(t.shape), t.dtype, t.numel() * t.element_size())
    assert reads == []  # opening and listing read no tensor bytes


def test_values_and_strides_match_torch_load(saved):
    path, tensors = saved
    assert_matches_torch_load(path, tensors)


def test_float8_and_unsigned_dtypes_are_covered(saved):
    _, tensors = saved
    names = {k.removeprefix("dtype.") for k in tensors if k.startswith("dtype.")}
    assert {"float8_e4m3fn", "float8_e5m2", "bfloat16", "uint8", "bool", "complex64", "complex128"} <= names


def test_a_view_reads_only_its_own_span(tmp_path, reads):
    big = torch.arange(1000, dtype=torch.float32)
    path = tmp_path / "view.pt"
    torch.save({"slice": big[100:110], "whole": big}, path)
    ck = ckptlab.open(path)
    got = ck.tensor("slice")
    assert torch.equal(got, big[100:110])
    assert [n for _, _, n in reads] == [40]
    assert got.untyped_storage().nbytes() == 40  # owns just its bytes, not the whole storage


def test_loads_are_independent_copies(saved):
    path, _ = saved
    ck = ckptlab.open(path)
    first = ck.tensor("dtype.float32")
    expected = first.clone()
    first.zero_()
    assert same_bytes(ck.tensor("dtype.float32"), expected)


def test_tied_tensors_are_reported_as_aliases(saved):
    path, _ = saved
    groups = ckptlab.open(path).aliases()
    assert ("tied.a", "tied.b") in groups
    assert not any("shared_row" in g for g in groups)  # same storage, different view: not an alias


def _rewrite_member(src, dst, name_suffix, transform, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith(name_suffix):
                data = transform(data)
            zout.writestr(info.filename, data)


def test_tensors_saved_on_cuda_open_on_cpu(tmp_path):
    t = torch.randn(3, 4)
    src, dst = tmp_path / "cpu.pt", tmp_path / "cuda.pt"
    torch.save({"w": t}, src)
    # torch.save on a GPU writes the location "cuda:0" into data.pkl: make exactly that file.
    _rewrite_member(src, dst, "data.pkl", lambda d: d.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0"))
    assert b"cuda:0" in zipfile.ZipFile(dst).read("cpu/data.pkl")
    got = ckptlab.open(dst).tensor("w")
    assert got.device.type == "cpu" and torch.equal(got, t)


def test_a_deflated_archive_still_reads(tmp_path, saved):
    path, tensors = saved
    rezipped = tmp_path / "deflated.pt"
    _rewrite_member(path, rezipped, "", lambda d: d, compression=zipfile.ZIP_DEFLATED)
    ck = ckptlab.open(rezipped)
    for key in ("dtype.float32", "sliced", "scalar", "empty"):
        assert same_bytes(ck.tensor(key), tensors[key])


def test_parameters_open_as_tensors(tmp_path):
    layer = torch.nn.Linear(3, 2)
    path = tmp_path / "params.pt"
    torch.save({"weight": layer.weight, "bias": layer.bias}, path)
    ck = ckptlab.open(path)
    assert torch.equal(ck.tensor("weight"), layer.weight.detach())
    assert type(ck.tensor("bias")) is torch.Tensor


def test_region_reads_are_bounded(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(10)))
    assert Region(path, 2, 5).read_into_tensor(1, 3).tolist() == [3, 4, 5]
    with pytest.raises(ckptlab.UnreadableFileError):
        Region(path, 2, 5).read_into_tensor(3, 4)
