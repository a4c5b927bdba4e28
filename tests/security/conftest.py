"""Fixtures for the hostile-file tests: clean checkpoints to re-read, a secret, message checks."""
from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import torch

import ckptlab
from ckptlab.errors import CheckpointError

CLEAN_TENSORS = {
    "f32": torch.linspace(-3.0, 7.0, 33, dtype=torch.float32) * torch.pi,
    "f64": torch.linspace(-1.0, 1.0, 17, dtype=torch.float64) / 3.0,
    "i64": torch.arange(-5, 6, dtype=torch.int64) * 2**40,
}


def write_clean(folder: Path) -> list[Path]:
    """The same float32/float64/int64 tensors as a torch zip, a legacy file and safetensors."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    torch.save(CLEAN_TENSORS, folder / "clean.pt")
    torch.save(CLEAN_TENSORS, folder / "clean_legacy.pt", _use_new_zipfile_serialization=False)
    save_file(CLEAN_TENSORS, str(folder / "clean.safetensors"))
    return [folder / "clean.pt", folder / "clean_legacy.pt", folder / "clean.safetensors"]


def assert_reads_back_bit_identical(paths: list[Path]) -> None:
    """Every clean file opens with its dtypes and exactly its bytes (nothing poisoned)."""
    for path in paths:
        ck = ckptlab.open(path)
        for key, want in CLEAN_TENSORS.items():
            got = ck.tensor(key)
            assert got.dtype == want.dtype and got.shape == want.shape, (path, key, got.dtype)
            assert got.view(torch.uint8).reshape(-1).tolist() == want.view(torch.uint8).reshape(-1).tolist(), (path, key)


def assert_one_line(error: BaseException) -> str:
    """A reading failure's message: one line, printable characters only, <= 300 characters."""
    text = str(error)
    assert isinstance(error, CheckpointError), f"{type(error).__name__}: {text[:200]}"
    assert text.isprintable() and len(text) <= 300, repr(text[:400])
    return text


@pytest.fixture(scope="session")
def clean_files(tmp_path_factory) -> list[Path]:
    return write_clean(tmp_path_factory.mktemp("clean"))


@pytest.fixture
def secret(tmp_path) -> bytes:
    """A file outside any checkpoint folder whose bytes must never reach an output."""
    token = secrets.token_hex(32).encode()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(token * 4)
    return token


@pytest.fixture
def secret_path(tmp_path, secret) -> Path:
    return tmp_path / "outside" / "secret.txt"
