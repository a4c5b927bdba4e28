"""Pairs of a given size written by the tests (and bench/bench_app.py), and the server's
memory read from /proc: its resident size now and its peak since it started."""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import save_file

NAMES = ("attn.q.weight", "attn.k.weight", "attn.v.weight", "attn.o.weight", "mlp.fc1.weight",
         "mlp.fc2.weight", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias")


def many_keys_pair(folder: Path, keys: int) -> tuple[Path, Path]:
    """A transformer-ish target with ``keys`` small tensors and its DDP-saved source (every
    key under ``module.``): ``2 * keys`` table rows before the fix."""
    state = {}
    for i in range(keys):
        name = f"blocks.{i // len(NAMES)}.{NAMES[i % len(NAMES)]}"
        state[name] = torch.zeros(16) if "norm" in name else torch.zeros(16, 16)
    target, source = folder / f"target_{keys}.safetensors", folder / f"source_{keys}_ddp.safetensors"
    save_file(state, target)
    save_file({"module." + k: v for k, v in state.items()}, source)
    return source, target


def big_pair(folder: Path, total_bytes: int, tensor_bytes: int = 64 * 2**20,
             sparse_target: bool = False) -> tuple[Path, Path]:
    """A source of about ``total_bytes`` (float32 tensors of ``tensor_bytes``, random, under
    ``module.``) and a target with the same keys unprefixed (zeros). Written one tensor at a
    time through safetensors, so the test itself never holds more than one file's tensors.
    ``sparse_target``: the target's zeros are a hole in the file (``zeros_safetensors``),
    not a gigabyte written."""
    count = max(1, total_bytes // tensor_bytes)
    rows = tensor_bytes // 4 // 1024
    generator = torch.Generator().manual_seed(0)
    source = {f"module.layers.{i}.weight": torch.rand(rows, 1024, generator=generator) for i in range(count)}
    save_file(source, folder / "big_source_ddp.safetensors")
    del source
    shapes = {f"layers.{i}.weight": (rows, 1024) for i in range(count)}
    if sparse_target:
        zeros_safetensors(folder / "big_target.safetensors", shapes)
    else:
        save_file({k: torch.zeros(shape) for k, shape in shapes.items()}, folder / "big_target.safetensors")
    return folder / "big_source_ddp.safetensors", folder / "big_target.safetensors"


def zeros_safetensors(path: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    """A .safetensors file of float32 zeros: its header written, its data a sparse hole
    (the file reads as zeros; nothing but the header touches the disk)."""
    header, offset = {}, 0
    for key, shape in shapes.items():
        size = 4 * math.prod(shape)
        header[key] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)                 # safetensors pads its header to 8 bytes
    with open(path, "wb") as handle:
        handle.write(len(text).to_bytes(8, "little") + text)
        handle.truncate(8 + len(text) + offset)


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of process ``pid`` from /proc (``VmRSS`` now, ``VmHWM`` the peak), kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)
