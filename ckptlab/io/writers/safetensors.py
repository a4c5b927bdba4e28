"""The ``.safetensors`` writer: 8-byte header size, a JSON header, then every tensor's bytes.

safetensors cannot share storage, so each alias of a tied group is written as its own copy
(the caller records the groups in the metadata).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, BinaryIO

import torch

from ckptlab.errors import MergeError
from ckptlab.io.writers.entries import Group
from ckptlab.io.writers.progress import ByteProgress
from ckptlab.io.writers.sink import Sink
from ckptlab.io.writers.staging import Staging

__all__ = ["SAFETENSORS_DTYPES", "write_safetensors"]

SAFETENSORS_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint64: "U64", torch.uint32: "U32", torch.uint16: "U16", torch.uint8: "U8",
    torch.bool: "BOOL", torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2",
    torch.float8_e4m3fnuz: "F8_E4M3FNUZ", torch.float8_e5m2fnuz: "F8_E5M2FNUZ",
    torch.complex64: "C64",
}


def write_safetensors(f: BinaryIO, groups: list[Group], metadata: Mapping[str, str], bar: ByteProgress) -> None:
    """The header (padded to 8 bytes with spaces) first, then the bytes in header order."""
    sink = Sink(f)
    staging = Staging()
    sink.write(_header(groups, metadata))
    for g in groups:
        span = g.copyable_span
        data = staging.bytes_of(g.tensor(view=True)) if span is None else None
        for key in g.keys:
            if data is None:
                sink.copy(span)
            else:
                sink.write(data)
            bar.advance(g.info.nbytes, key)
        del data
    sink.flush()

def _header(groups: list[Group], metadata: Mapping[str, str]) -> bytes:
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for g in groups:
        code = SAFETENSORS_DTYPES.get(g.info.dtype)
        if code is None:
            raise MergeError(f"safetensors cannot store {g.info.dtype_name} (key {g.keys[0]!r}); write .pt instead")
        for key in g.keys:
            header[key] = {"dtype": code, "shape": list(g.info.shape),
                           "data_offsets": [offset, offset + g.info.nbytes]}
            offset += g.info.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text
