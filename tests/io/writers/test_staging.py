"""The writers' staging buffer: strided tensors come out in C order, byte for byte, from one
buffer reused across a write (fresh memory per tensor cost page faults), contiguous ones
without any copy."""
from __future__ import annotations

import numpy as np
import torch

from ckptlab.io.writers.staging import Staging


def _address(view: memoryview) -> int:
    return np.frombuffer(view, dtype=np.uint8).ctypes.data


def test_strided_tensors_come_out_in_c_order_from_one_reused_buffer():
    g = torch.Generator().manual_seed(0)
    tensors = [
        torch.randn(300, 517, generator=g).t(),  # 620 KB, transposed
        torch.randint(-2**40, 2**40, (6, 50, 7), generator=g).permute(2, 0, 1),  # smaller, int64, 3-D
        torch.randn(130, 77, generator=g).half().t(),
        torch.rand(40, 9, generator=g).t() > 0.5,  # bool
        torch.randn(64, 33, dtype=torch.complex64, generator=g).t(),
        torch.randn(700, 600, generator=g)[:, ::2],  # larger: the buffer grows
    ]
    staging = Staging()
    addresses = []
    for t in tensors:
        assert not t.is_contiguous()
        got = staging.bytes_of(t)
        assert bytes(got) == t.contiguous().numpy().tobytes()
        addresses.append(_address(got))
    assert len(set(addresses[:5])) == 1  # every tensor up to the first's size reused the first buffer


def test_contiguous_and_empty_tensors_are_not_copied():
    staging = Staging()
    t = torch.arange(12.0).reshape(3, 4)
    assert _address(staging.bytes_of(t)) == t.data_ptr()
    assert len(staging.bytes_of(torch.empty(0, 5).t())) == 0
    assert staging._buffer is None  # nothing staged: no buffer made
