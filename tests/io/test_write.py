"""Streaming writers: bit-exact bytes, torch/safetensors can read them, atomic, tied, sharded."""
from __future__ import annotations

import json
import os
import zipfile

import pytest
import torch
from safetensors import safe_open

from ckptlab.errors import MergeError
from ckptlab.io.tensor_info import TensorInfo
from ckptlab.io.writers import OutTensor, write_tensors

DTYPES = [torch.float32, torch.float16, torch.float64, torch.bfloat16, torch.float8_e4m3fn,
          torch.float8_e5m2, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8,
          torch.bool, torch.complex64, torch.complex128]
NOT_IN_SAFETENSORS = {torch.complex128}


def random_bits(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Every bit pattern is fair game (NaNs, infs, subnormals); bools stay 0/1."""
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    n = int(torch.tensor(shape).prod()) if shape else 1
    raw = torch.randint(0, 256, (n * dtype.itemsize,), dtype=torch.uint8, generator=g)
    return raw.view(dtype).reshape(shape)


def bits(t: torch.Tensor) -> bytes:
    t = t.contiguous().reshape(-1)
    if t.is_complex():
        t = torch.view_as_real(t).reshape(-1)
    return t.view(torch.uint8).numpy().tobytes()


def outs(tensors: dict[str, torch.Tensor], share: dict[str, str] | None = None) -> list[OutTensor]:
    share = share or {}
    return [OutTensor(k, TensorInfo.of(v), (lambda v=v: v), share.get(k)) for k, v in tensors.items()]


def sample_tensors(dtypes) -> dict[str, torch.Tensor]:
    d = {f"t.{str(dt).removeprefix('torch.')}": random_bits((3, 5), dt, i) for i, dt in enumerate(dtypes)}
    d["scalar"] = torch.tensor(2.5, dtype=torch.float64)
    d["empty"] = torch.zeros(0, 7, dtype=torch.float16)
    d["noncontig"] = random_bits((6, 4), torch.float32, 99).t()[1:, ::2]
    return d


def read_back(path) -> dict[str, torch.Tensor]:
    if str(path).endswith(".safetensors"):
        with safe_open(path, "pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    return torch.load(path, weights_only=True, mmap=True)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors", ".pth"])
def test_every_dtype_shape_and_layout_comes_back_bit_identical(tmp_path, suffix):
    dtypes = [d for d in DTYPES if suffix != ".safetensors" or d not in NOT_IN_SAFETENSORS]
    tensors = sample_tensors(dtypes)
    out = tmp_path / f"model{suffix}"
    assert write_tensors(outs(tensors), out) == [out]
    back = read_back(out)
    assert set(back) == set(tensors)
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape, k
        assert bits(back[k]) == bits(v), k


def test_pt_records_are_64_byte_aligned_like_torch_save(tmp_path):
    out = tmp_path / "m.pt"
    write_tensors(outs(sample_tensors(DTYPES)), out)
    with zipfile.ZipFile(out) as zf, open(out, "rb") as f:
        for info in zf.infolist():
            f.seek(info.header_offset + 26)
            name_len, extra_len = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
            assert (info.header_offset + 30 + name_len + extra_len) % 64 == 0, info.filename
        assert zf.testzip() is None  # CRCs are right


def test_safetensors_refuses_complex128_before_writing_anything(tmp_path):
    out = tmp_path / "m.safetensors"
    with pytest.raises(MergeError, match="complex128"):
        write_tensors(outs({"z": random_bits((2,), torch.complex128, 0)}), out)
    assert os.listdir(tmp_path) == []


def test_tied_tensors_share_storage_in_pt_and_are_copies_recorded_in_safetensors(tmp_path):
    w = random_bits((4, 3), torch.float32, 1)
    tensors = {"embed.weight": w, "bias": random_bits((3,), torch.int8, 2), "head.weight": w}
    entries = outs(tensors, share={"embed.weight": "tie", "head.weight": "tie"})
    reads = []
    entries = [OutTensor(e.key, e.info, (lambda e=e: reads.append(e.key) or e.produce()), e.share) for e in entries]

    write_tensors(entries, tmp_path / "m.pt")
    back = torch.load(tmp_path / "m.pt", weights_only=True)
    assert back["embed.weight"].untyped_storage().data_ptr() == back["head.weight"].untyped_storage().data_ptr()
    assert bits(back["head.weight"]) == bits(w)
    assert reads.count("embed.weight") == 1 and "head.weight" not in reads  # one read per tied group

    write_tensors(entries, tmp_path / "m.safetensors")
    with safe_open(tmp_path / "m.safetensors", "pt") as f:
        assert sorted(f.keys()) == sorted(tensors)
        assert json.loads(f.metadata()["ckptlab.aliases"]) == [["embed.weight", "head.weight"]]
        assert bits(f.get_tensor("head.weight")) == bits(w)


def test_progress_reports_every_byte_in_order(tmp_path):
    tensors = sample_tensors([torch.float32, torch.int64])
    calls = []
    write_tensors(outs(tensors), tmp_path / "m.safetensors", progress=lambda d, t, k: calls.append((d, t, k)))
    total = sum(v.numel() * v.element_size() for v in tensors.values())
    assert calls[0] == (0, total, "")
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert calls[-1][:2] == (total, total)
    assert {c[2] for c in calls[1:]} == set(tensors)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_an_error_mid_write_leaves_no_output_and_no_temp_file(tmp_path, suffix):
    tensors = sample_tensors([torch.float32, torch.int64, torch.float16])
    entries = outs(tensors)

    def boom():
        raise OSError("disk went away")

    entries[2] = OutTensor(entries[2].key, entries[2].info, boom)
    with pytest.raises(OSError, match="disk went away"):
        write_tensors(entries, tmp_path / f"m{suffix}")
    assert os.listdir(tmp_path) == []


def test_a_failed_write_keeps_the_previous_file_untouched(tmp_path):
    out = tmp_path / "m.pt"
    out.write_bytes(b"previous")
    bad = OutTensor("x", TensorInfo((2,), torch.float32, 8), lambda: torch.zeros(3))  # not what was promised
    with pytest.raises(MergeError, match="plan said"):
        write_tensors([bad], out)
    assert out.read_bytes() == b"previous" and os.listdir(tmp_path) == ["m.pt"]


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_sharded_output_has_numbered_files_and_an_index(tmp_path, suffix):
    tensors = {f"layer{i}.weight": random_bits((256,), torch.float32, i) for i in range(5)}  # 1 KB each
    written = write_tensors(outs(tensors), tmp_path / f"model{suffix}", max_shard_size=2500)
    names = [p.name for p in written]
    assert names == [f"model-0000{i}-of-00003{suffix}" for i in (1, 2, 3)] + [f"model{suffix}.index.json"]
    index = json.loads((tmp_path / f"model{suffix}.index.json").read_text())
    assert index["metadata"]["total_size"] == 5 * 1024
    assert set(index["weight_map"]) == set(tensors)
    for key, shard in index["weight_map"].items():
        assert bits(read_back(tmp_path / shard)[key]) == bits(tensors[key])
    assert sorted(os.listdir(tmp_path)) == sorted(names)


def test_wrap_nests_the_tensors_and_extras_keep_their_tensors(tmp_path):
    tensors = {"model.w": random_bits((2, 2), torch.float32, 3)}
    step = torch.tensor([7], dtype=torch.int64)
    write_tensors(outs(tensors), tmp_path / "m.ckpt",
                  wrap=lambda sd: {"state_dict": sd, "epoch": 3, "optimizer": {"step": step}, "tag": ("a", 1)})
    back = torch.load(tmp_path / "m.ckpt", weights_only=True)
    assert back["epoch"] == 3 and back["tag"] == ("a", 1)
    assert torch.equal(back["optimizer"]["step"], step)
    assert bits(back["state_dict"]["model.w"]) == bits(tensors["model.w"])


def test_an_unknown_suffix_is_refused(tmp_path):
    with pytest.raises(MergeError, match="must end in"):
        write_tensors(outs({"a": torch.zeros(1)}), tmp_path / "m.npz")


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_a_file_span_is_copied_file_to_file_without_loading_the_tensor(tmp_path, suffix):
    from ckptlab.io.writers import FileSpan

    a, b = random_bits((300, 7), torch.float32, 5), random_bits((9,), torch.int16, 6)
    raw = tmp_path / "raw.bin"
    raw.write_bytes(b"header!" + bits(a) + b"tail")

    def never():
        raise AssertionError("the tensor was loaded although its bytes could be copied")

    entries = [OutTensor("a", TensorInfo.of(a), never, span=FileSpan(str(raw), 7, a.nbytes)),
               OutTensor("b", TensorInfo.of(b), lambda: b),
               OutTensor("a2", TensorInfo.of(a), never, share=None, span=FileSpan(str(raw), 7, a.nbytes))]
    write_tensors(entries, tmp_path / f"m{suffix}")
    back = read_back(tmp_path / f"m{suffix}")
    assert bits(back["a"]) == bits(a) == bits(back["a2"]) and bits(back["b"]) == bits(b)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_a_span_past_the_end_of_its_file_fails_cleanly(tmp_path, suffix):
    from ckptlab.io.writers import FileSpan

    raw = tmp_path / "raw.bin"
    raw.write_bytes(b"\0" * 10)
    entry = OutTensor("a", TensorInfo((8,), torch.float32, 32), lambda: torch.zeros(8), span=FileSpan(str(raw), 0, 32))
    with pytest.raises(MergeError, match="file ends inside tensor data"):
        write_tensors([entry], tmp_path / f"m{suffix}")
    assert os.listdir(tmp_path) == ["raw.bin"]


def test_a_wrapped_output_cannot_be_sharded(tmp_path):
    tensors = {f"w{i}": random_bits((256,), torch.float32, i) for i in range(3)}
    with pytest.raises(MergeError, match="cannot be split into shards"):
        write_tensors(outs(tensors), tmp_path / "m.pt", wrap=lambda sd: {"state_dict": sd}, max_shard_size=1500)
    assert os.listdir(tmp_path) == []
