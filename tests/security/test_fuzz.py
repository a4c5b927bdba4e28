"""Seeded fuzz: truncated and byte-flipped real checkpoints either read or fail cleanly.

Seeds are the bundled samples and the third-party files. Each case mutates one seed (a
truncation, a few flipped bytes anywhere, or the same done to the pickle *inside* a zip,
which is then re-zipped with a correct CRC so the unpickler, not the CRC check, meets the
damage), then opens it and loads every tensor. Accepted: success, or a ``CheckpointError``
whose message is one printable line of at most 300 characters. Anything else fails and
names the case (seed file, mutation, RNG seed) so it can be replayed. Each case runs under
an alarm, so one hang fails the test instead of stalling CI.
"""
from __future__ import annotations

import io
import random
import signal
import zipfile
from pathlib import Path

import pytest

import ckptlab
from ckptlab.errors import CheckpointError
from tests.paths import REPO

SEEDS = sorted([*REPO.glob("sample_ckpts/*.pt"), *REPO.glob("sample_ckpts/*.ckpt"),
                *REPO.glob("sample_ckpts/*.safetensors"), *REPO.glob("tests/third_party/*/*.pt"),
                *REPO.glob("tests/third_party/*/*.pth"), *REPO.glob("tests/third_party/*/*.jit")])
CASES_PER_SEED = 20
CASE_SECONDS = 10  # hang guard per case (an alarm), not a benchmark
MAX_TENSORS_LOADED = 50


class _Hang(Exception):
    pass


def _flip(data: bytes, rng: random.Random, hot: int = 0) -> bytes:
    """1-4 bytes changed; half the time within the first/last ``hot`` bytes (headers, directories)."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if hot and rng.random() < 0.5:
            at = rng.randrange(min(hot, len(out)))
            at = at if rng.random() < 0.5 else len(out) - 1 - at
        else:
            at = rng.randrange(len(out))
        out[at] = rng.choice([0, 0xFF, out[at] ^ (1 << rng.randrange(8)), rng.randrange(256)])
    return bytes(out)


def _rezip_with(data: bytes, change) -> bytes | None:
    """The archive with its data.pkl replaced by ``change(data.pkl)`` (CRCs recomputed)."""
    try:
        zin = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return None
    out = io.BytesIO()
    with zin, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            body = zin.read(info)
            zout.writestr(info.filename, change(body) if info.filename.endswith("data.pkl") else body)
    return out.getvalue()


def _mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(["truncate", "flip", "pickle-flip", "pickle-truncate"])
    if kind == "truncate":
        return kind, data[: rng.randrange(len(data))]
    if kind == "flip":
        return kind, _flip(data, rng, hot=4096)
    change = (lambda pkl: _flip(pkl, rng)) if kind == "pickle-flip" else (lambda pkl: pkl[: rng.randrange(len(pkl))])
    rezipped = _rezip_with(data, change)
    return (kind, rezipped) if rezipped is not None else ("flip", _flip(data, rng, hot=4096))


def _exercise(path: Path) -> None:
    ck = ckptlab.open(path)
    for key in list(ck.keys())[:MAX_TENSORS_LOADED]:
        ck.tensor(key)
    repr(ck.other), ck.aliases(), ck.total_bytes


@pytest.mark.timeout(300)
@pytest.mark.parametrize("seed_file", SEEDS, ids=[p.name for p in SEEDS])
def test_mutated_checkpoints_read_or_fail_with_a_one_line_checkpoint_error(tmp_path, seed_file):
    original = seed_file.read_bytes()
    previous = signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(_Hang()))
    failures, outcomes = [], {"ok": 0, "error": 0}
    try:
        for case in range(CASES_PER_SEED):
            rng = random.Random(f"{seed_file.name}:{case}")
            kind, data = _mutate(original, rng)
            path = tmp_path / f"case{case}{seed_file.suffix}"
            path.write_bytes(data)
            signal.alarm(CASE_SECONDS)
            try:
                _exercise(path)
                outcomes["ok"] += 1
            except CheckpointError as exc:
                text = str(exc)
                if not (text.isprintable() and len(text) <= 300):
                    failures.append(f"case {case} ({kind}): message {text[:400]!r}")
                outcomes["error"] += 1
            except _Hang:
                failures.append(f"case {case} ({kind}): no answer within {CASE_SECONDS} s")
            except Exception as exc:  # noqa: BLE001 - exactly what this test hunts
                failures.append(f"case {case} ({kind}): {type(exc).__name__}: {str(exc)[:200]}")
            finally:
                signal.alarm(0)
            path.unlink()
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert not failures, f"{seed_file.name}: " + "; ".join(failures)
    assert outcomes["error"] > 0  # the mutations did reach the readers
