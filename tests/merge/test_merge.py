"""The merge: copied tensors bit-identical in both formats, exactly the target's keys, and
nothing written while a conflict or an unresolved mismatch remains."""
from __future__ import annotations

import json
import os

import pandas as pd
import pytest
import torch
from safetensors import safe_open

import ckptlab
import ckptlab.io.formats.base
from ckptlab.align.matcher import align
from ckptlab.errors import MergeError
from ckptlab.merge.planning import (
    KEPT_TARGET,
    cast_note,
    loses_precision,
    merged_tensor,
    plan,
    remap,
)
from ckptlab.merge.report import Report

DTYPES = [torch.float32, torch.float16, torch.float64, torch.bfloat16, torch.float8_e4m3fn,
          torch.float8_e5m2, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8,
          torch.bool, torch.complex64, torch.complex128]


def random_bits(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Any bit pattern (NaN payloads, infs, subnormals): equality must be on bytes."""
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    n = 1
    for d in shape:
        n *= d
    return torch.randint(0, 256, (n * dtype.itemsize,), dtype=torch.uint8, generator=g).view(dtype).reshape(shape)


def bits(t: torch.Tensor) -> bytes:
    t = t.contiguous().reshape(-1)
    if t.is_complex():
        t = torch.view_as_real(t).reshape(-1)
    return t.view(torch.uint8).numpy().tobytes()


def read_back(path) -> dict[str, torch.Tensor]:
    if str(path).endswith(".safetensors"):
        with safe_open(path, "pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    return torch.load(path, weights_only=True)


def source_state(dtypes) -> dict[str, torch.Tensor]:
    """Every dtype, a 0-dim, an empty, a non-contiguous view and a tied pair."""
    sd = {f"t_{str(dt).removeprefix('torch.')}": random_bits((4, 3), dt, i) for i, dt in enumerate(dtypes)}
    sd["scalar"] = random_bits((), torch.float32, 50)
    sd["empty"] = torch.zeros(0, 5, dtype=torch.bfloat16)
    big = random_bits((6, 8), torch.float32, 51)
    sd["view_t"] = big.t()[2:, 1::2]  # non-contiguous, offset into a bigger storage
    tied = random_bits((5, 2), torch.float16, 52)
    sd["tied_a"], sd["tied_b"] = tied, tied
    return sd


@pytest.fixture
def pair(tmp_path):
    """A source file and a target file with the same shapes under ``net.``, other values, one extra key."""
    def make(dtypes):
        src = source_state(dtypes)
        torch.save(src, tmp_path / "source.pt")
        tgt = {f"net.{k}": random_bits(tuple(v.shape), v.dtype, 100 + i) for i, (k, v) in enumerate(src.items())}
        tgt["net.new_head"] = random_bits((3, 3), torch.float32, 200)
        torch.save(tgt, tmp_path / "target.pt")
        return src, tgt
    return make


RECIPE = {"rules": [{"add_prefix": "net."}]}


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_copied_tensors_are_bit_identical_and_output_has_exactly_the_target_keys(tmp_path, pair, suffix):
    dtypes = [d for d in DTYPES if not (suffix == ".safetensors" and d == torch.complex128)]
    src, tgt = pair(dtypes)
    out = tmp_path / f"out{suffix}"
    report = remap(tmp_path / "source.pt", tmp_path / "target.pt", out, recipe=RECIPE, auto="none")
    back = read_back(out)
    assert set(back) == set(tgt)
    for key, value in src.items():
        got = back[f"net.{key}"]
        assert got.dtype == value.dtype and got.shape == value.shape, key
        assert bits(got) == bits(value), key
    assert bits(back["net.new_head"]) == bits(tgt["net.new_head"])  # missing: the target's own value
    assert report.missing == ["net.new_head"] and len(report.loaded) == len(src)
    assert report.unused == []
    if suffix == ".pt":
        assert back["net.tied_a"].untyped_storage().data_ptr() == back["net.tied_b"].untyped_storage().data_ptr()
    assert ["net.tied_a", "net.tied_b"] in report.aliases


def test_safetensors_cannot_hold_complex128_and_nothing_is_written(tmp_path, pair):
    pair([torch.complex128])
    with pytest.raises(MergeError, match="complex128"):
        remap(tmp_path / "source.pt", tmp_path / "target.pt", tmp_path / "out.safetensors", recipe=RECIPE, auto="none")
    assert not any(p.name.startswith(("out", ".out")) for p in tmp_path.iterdir())


def write_pair(tmp_path, src: dict, tgt: dict):
    torch.save(src, tmp_path / "s.pt")
    torch.save(tgt, tmp_path / "t.pt")
    return tmp_path / "s.pt", tmp_path / "t.pt"


def test_a_conflict_blocks_the_merge_and_writes_nothing(tmp_path):
    s, t = write_pair(tmp_path, {"a.w": torch.ones(2), "b.w": torch.zeros(2)}, {"w": torch.zeros(2)})
    recipe = {"rules": [{"replace": {"pattern": "^(a|b)\\.", "with": ""}}]}
    with pytest.raises(MergeError) as err:
        remap(s, t, tmp_path / "out.pt", recipe=recipe, auto="none")
    assert "conflict at 'w' (a.w, b.w)" in str(err.value) and "\n" not in str(err.value)
    assert "to go on: make the rules send one source key to each target key" in str(err.value)
    assert not (tmp_path / "out.pt").exists()
    assert sorted(os.listdir(tmp_path)) == ["s.pt", "t.pt"]


def test_a_mismatch_without_an_adapter_blocks_the_merge(tmp_path):
    s, t = write_pair(tmp_path, {"conv1.weight": torch.ones(8, 3, 3, 3), "b": torch.ones(1)},
                      {"conv1.weight": torch.zeros(8, 4, 3, 3), "b": torch.zeros(1)})
    with pytest.raises(MergeError, match=r"1 row blocks the merge: shape mismatch at 'conv1.weight': "
                                         r"source \(8, 3, 3, 3\) vs target \(8, 4, 3, 3\) \(to go on: .*"
                                         r"keep-target\)$"):
        remap(s, t, tmp_path / "out.safetensors", auto="none")
    assert sorted(os.listdir(tmp_path)) == ["s.pt", "t.pt"]


def test_keep_target_writes_the_targets_value_and_says_so(tmp_path):
    s, t = write_pair(tmp_path, {"conv1.weight": torch.ones(8, 3, 3, 3), "b": torch.ones(1)},
                      {"conv1.weight": torch.full((8, 4, 3, 3), 5.0), "b": torch.zeros(1)})
    report = remap(s, t, tmp_path / "out.pt", auto="none", on_mismatch="keep-target")
    back = torch.load(tmp_path / "out.pt", weights_only=True)
    assert torch.equal(back["conv1.weight"], torch.full((8, 4, 3, 3), 5.0))
    assert torch.equal(back["b"], torch.ones(1))
    row = report.row("conv1.weight")
    assert row.status == "mismatch" and row.note == KEPT_TARGET and row.source == "conv1.weight"
    assert report.pretrained == ["b"]


def test_dtype_policy_target_source_or_forced(tmp_path):
    src = {"w": random_bits((4, 4), torch.float32, 1).nan_to_num(), "n": torch.tensor(7, dtype=torch.int64)}
    s, t = write_pair(tmp_path, src, {"w": torch.zeros(4, 4, dtype=torch.float16), "n": torch.tensor(0)})
    rep = remap(s, t, tmp_path / "a.pt", auto="none")
    a = torch.load(tmp_path / "a.pt", weights_only=True)
    assert a["w"].dtype == torch.float16 and torch.equal(a["w"], src["w"].half())
    assert rep.row("w").note == "cast float32->float16 loses precision"
    assert rep.row("n").note == ""

    remap(s, t, tmp_path / "b.pt", auto="none", dtype="source")
    assert bits(torch.load(tmp_path / "b.pt", weights_only=True)["w"]) == bits(src["w"])

    rep = remap(s, t, tmp_path / "c.safetensors", auto="none", dtype="bfloat16")
    c = read_back(tmp_path / "c.safetensors")
    assert c["w"].dtype == torch.bfloat16 and c["n"].dtype == torch.int64 and int(c["n"]) == 7
    assert rep.row("w").note == "cast float32->bfloat16 loses precision"
    with pytest.raises(MergeError, match="dtype must be"):
        remap(s, t, tmp_path / "d.pt", auto="none", dtype="float17")


@pytest.mark.parametrize("src,dst,lossy", [
    (torch.float32, torch.float16, True), (torch.float32, torch.bfloat16, True), (torch.float16, torch.float32, False),
    (torch.bfloat16, torch.float16, True), (torch.float32, torch.int32, True), (torch.int64, torch.int32, True),
    (torch.int8, torch.int64, False), (torch.int8, torch.float16, False), (torch.int32, torch.float32, True),
    (torch.uint8, torch.int8, True), (torch.bool, torch.float8_e5m2, False), (torch.complex64, torch.float32, True),
    (torch.float32, torch.complex64, False), (torch.float16, torch.float8_e4m3fn, True),
])
def test_lossy_casts_are_recognised_by_comparing_values(src, dst, lossy):
    """Check the rule against real casts of a wide sample of the source's values (exact Python compare)."""
    if src == torch.bool:
        sample = torch.tensor([True, False])
    elif src.is_floating_point or src.is_complex:
        sample = random_bits((4096,), src, 3)
        sample = sample[~torch.isnan(sample)]
    else:
        info = torch.iinfo(src)
        sample = torch.cat([torch.tensor([info.min, info.max], dtype=src), random_bits((4096,), src, 3)])
    with pytest.warns(UserWarning) if src.is_complex and not dst.is_complex else _no_warning():
        cast = sample.to(dst)
    changed = any(complex(a) != complex(b) for a, b in zip(cast.tolist(), sample.tolist()))
    assert changed == lossy
    assert loses_precision(src, dst) == lossy
    assert cast_note(src, dst).endswith("loses precision") == lossy


def _no_warning():
    import contextlib

    return contextlib.nullcontext()


def test_merged_tensor_is_what_gets_written(tmp_path):
    s, t = write_pair(tmp_path, {"fc.weight": torch.randn(10, 16)}, {"fc.weight": torch.randn(100, 16)})
    recipe = {"adapt": {"fc.weight": {"op": "pad", "dim": 0, "fill": "init"}}}
    al = align(s, t, recipe=recipe, auto="none")
    p = plan(al)
    remap(s, t, tmp_path / "out.pt", recipe=recipe, auto="none")
    assert bits(merged_tensor(p, "fc.weight")) == bits(torch.load(tmp_path / "out.pt", weights_only=True)["fc.weight"])
    with pytest.raises(MergeError, match="no target key"):
        merged_tensor(p, "nope")


def test_an_adapter_that_cannot_fit_blocks_the_merge(tmp_path):
    s, t = write_pair(tmp_path, {"w": torch.ones(8, 3)}, {"w": torch.zeros(8, 2)})
    with pytest.raises(ckptlab.CheckpointError, match="'w'"):
        remap(s, t, tmp_path / "out.pt", recipe={"adapt": {"w": {"op": "pad", "dim": 1}}}, auto="none")
    assert not (tmp_path / "out.pt").exists()


def test_report_serialises_to_json_and_csv(tmp_path):
    s, t = write_pair(tmp_path, {"a": torch.ones(2), "old": torch.ones(1)}, {"a": torch.zeros(2), "new": torch.zeros(3)})
    rep = remap(s, t, tmp_path / "out.pt", auto="none")
    data = json.loads(rep.to_json())
    assert data["summary"]["exact"] == 1 and data["summary"]["missing"] == 1 and data["summary"]["unused"] == 1
    assert data["recipe"] == rep.recipe and data["outputs"] == [str(tmp_path / "out.pt")]
    assert Report.from_dict(data).to_dict() == data
    rep.save(tmp_path / "r.csv")
    frame = pd.read_csv(tmp_path / "r.csv", keep_default_na=False)
    assert list(frame.columns) == ["target", "source", "status", "adapter", "source_dtype", "target_dtype", "note"]
    assert sorted(frame["status"]) == ["exact", "missing", "unused"]
    assert frame.loc[frame["status"] == "unused", "source"].tolist() == ["old"]


class SpannedLazy(ckptlab.io.formats.base.LazyTensor):
    """A reader's LazyTensor that also says where its bytes lie on disk."""

    __slots__ = ("file_span",)


def test_unchanged_tensors_with_a_file_span_are_copied_without_loading(tmp_path):
    from ckptlab.io.checkpoint import Checkpoint
    from ckptlab.io.tensor_info import TensorInfo

    w = random_bits((64, 3), torch.float32, 9)
    raw = tmp_path / "raw.bin"
    raw.write_bytes(b"pad" + bits(w))
    loads = []

    def lazy() -> SpannedLazy:
        ref = SpannedLazy(TensorInfo.of(w), lambda: loads.append(1) or w.clone())
        ref.file_span = (str(raw), 3, w.nbytes)
        return ref

    source = Checkpoint({"w": lazy(), "v": lazy()})
    target = {"w": torch.zeros(64, 3), "v": torch.zeros(64, 3, dtype=torch.float16)}
    for suffix in (".safetensors", ".pt"):
        loads.clear()
        remap(source, target, tmp_path / f"out{suffix}", auto="none")
        back = read_back(tmp_path / f"out{suffix}")
        assert bits(back["w"]) == bits(w)
        assert torch.equal(back["v"], w.half())
        assert loads == [1]  # only the tensor that needed a cast was loaded
