"""Seeded fuzz: truncated and byte-flipped real checkpoints either read or fail cleanly.

Seeds are the bundled samples and the third-party files, and this round's hostile sources
(issue 18: placeholders whose class name holds opcodes, ``logging.FileHandler`` and
``zipfile.ZipFile`` records, numpy extras, formula and near-limit keys, optimizer state).
Each case mutates one seed (a truncation, a few flipped bytes anywhere, or the same done to
the pickle *inside* a zip, which is then re-zipped with a correct CRC so the unpickler, not
the CRC check, meets the damage), then opens it and loads every tensor. Accepted: success,
or a ``CheckpointError`` whose message is one printable line of at most 300 characters.
Every case that opens is also written back with ``keep_extras`` into a .pt, and that output
must load with ``torch.load(weights_only=True)``: no output is riskier than its input.
Anything else fails and names the case (seed file, mutation, RNG seed) so it can be
replayed. Each case runs under an alarm, so one hang fails the test instead of stalling CI.
"""
from __future__ import annotations

import io
import pickletools
import random
import signal
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import ckptlab
from ckptlab.errors import CheckpointError
from tests.paths import REPO
from tests.security.test_outputs import FORMULAS, SOURCES, hostile_source

SEEDS = sorted([*REPO.glob("sample_ckpts/*.pt"), *REPO.glob("sample_ckpts/*.ckpt"),
                *REPO.glob("sample_ckpts/*.safetensors"), *REPO.glob("tests/third_party/*/*.pt"),
                *REPO.glob("tests/third_party/*/*.pth"), *REPO.glob("tests/third_party/*/*.jit")])
CASES_PER_SEED = 20
ROUND3_CASES = 60  # this round's seeds are small and cheap: more cases each
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


# Values a "pickle-values" mutation puts in place of a string in a pickle: this round's names
# (class names holding opcodes, dangerous modules, formulas, keys at the length limit).
HOSTILE_TEXT = ["Cfg\n0cos\nsystem\n(Vtouch /tmp/ckptlab_fuzz_marker\ntR0", "os", "system", "subprocess",
                "logging", "FileHandler", "OrderedDict\n0c", "=HYPERLINK(\"http://x\")", "@SUM(1)", "-1", "\r",
                "k" * 1023, "k" * 1024, "k" * 1025, "", "\x00", "é.ü", "a.b.0.c", "torch", "FloatStorage",
                "numpy.core.multiarray", "_reconstruct", "ndarray", "weight", "archive"]
_TEXT_OPS = {"BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
_INT_OPS = {"BININT1", "BININT2", "BININT"}


def _mutate_values(pkl: bytes, rng: random.Random) -> bytes:
    """1-3 strings or small ints of the pickle replaced, the opcode structure kept: files that
    still parse, with hostile names and values where the seed had plain ones."""
    try:
        ops = [(op.name, arg, pos) for op, arg, pos in pickletools.genops(pkl)]
    except Exception:  # noqa: BLE001 - an unparseable pickle stays as it is
        return pkl
    ends = [pos for _, _, pos in ops[1:]] + [len(pkl)]
    spots = [i for i, (name, _, _) in enumerate(ops) if name in _TEXT_OPS | _INT_OPS]
    if not spots:
        return pkl
    out, last = bytearray(), 0
    for i in sorted(rng.sample(spots, min(len(spots), rng.randint(1, 3)))):
        name, _, pos = ops[i]
        if name in _TEXT_OPS:
            text = rng.choice(HOSTILE_TEXT).encode("utf-8")
            new = b"X" + struct.pack("<I", len(text)) + text
        else:
            new = b"J" + struct.pack("<i", rng.choice([0, 1, -1, 2**31 - 1, 255, 7]))
        out += pkl[last:pos] + new
        last = ends[i]
    return bytes(out + pkl[last:])


def _mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(["truncate", "flip", "pickle-flip", "pickle-truncate", "pickle-values"])
    if kind == "truncate":
        return kind, data[: rng.randrange(len(data))]
    if kind == "flip":
        return kind, _flip(data, rng, hot=4096)
    change = {"pickle-flip": lambda pkl: _flip(pkl, rng), "pickle-values": lambda pkl: _mutate_values(pkl, rng),
              "pickle-truncate": lambda pkl: pkl[: rng.randrange(len(pkl))]}[kind]
    rezipped = _rezip_with(data, change)
    return (kind, rezipped) if rezipped is not None else ("flip", _flip(data, rng, hot=4096))


def _exercise(path: Path, out: Path) -> None:
    """Open, load tensors, and write back with every extra kept: the output must load with
    ``weights_only=True`` (a ``CheckpointError`` while writing is a clean outcome too)."""
    ck = ckptlab.open(path)
    for key in list(ck.keys())[:MAX_TENSORS_LOADED]:
        ck.tensor(key)
    repr(ck.other), ck.aliases(), ck.total_bytes
    ckptlab.remap(path, path, out, keep_extras=True, nest=bool(ck.container))
    torch.load(out, weights_only=True)  # raises (and fails the case) if ckptlab wrote anything else
    out.unlink()


def _fuzz(original: bytes, label: str, suffix: str, tmp_path: Path, cases: int = CASES_PER_SEED) -> None:
    previous = signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(_Hang()))
    failures, outcomes = [], {"ok": 0, "error": 0}
    try:
        for case in range(cases):
            rng = random.Random(f"{label}:{case}")
            kind, data = _mutate(original, rng)
            path = tmp_path / f"case{case}{suffix}"
            path.write_bytes(data)
            signal.alarm(CASE_SECONDS)
            try:
                _exercise(path, tmp_path / f"out{case}.pt")
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
    assert not failures, f"{label}: " + "; ".join(failures)
    assert outcomes["error"] > 0  # the mutations did reach the readers


@pytest.mark.timeout(300)
@pytest.mark.parametrize("seed_file", SEEDS, ids=[p.name for p in SEEDS])
def test_mutated_checkpoints_read_or_fail_with_a_one_line_checkpoint_error(tmp_path, seed_file):
    _fuzz(seed_file.read_bytes(), seed_file.name, seed_file.suffix, tmp_path)


# -- this round's hostile sources as seeds ---------------------------------------------------
def _numpy_extras(folder: Path) -> Path:
    path = folder / "numpy_extras.pt"
    torch.save({"w": torch.ones(3), "mask": np.array([[True, False]]), "acc": np.float64(0.5),
                "hist": np.arange(6, dtype=np.int16).reshape(2, 3), "step": np.int64(4)}, path)
    return path


def _keys_at_the_edge(folder: Path) -> Path:
    path = folder / "edge_keys.pt"
    torch.save({**{k: torch.ones(1) for k in FORMULAS}, "k" * 1024: torch.ones(2),
                "nested": {"x" * 500: {"y": torch.ones(1)}}}, path)
    return path


def _training(folder: Path) -> Path:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    opt = torch.optim.Adam(net.parameters())
    net(torch.randn(5, 3)).sum().backward()
    opt.step()
    path = folder / "training.pt"
    torch.save({"state_dict": net.state_dict(), "optimizer": opt.state_dict(), "epoch": 1,
                "sizes": torch.Size([2, 3]), "tags": {"a", "b"}, "raw": b"\x00\xff", "dev": torch.device("cpu")},
               path)
    return path


ROUND3 = {**{name: (lambda folder, n=name: hostile_source(folder, n, folder / "marker")) for name in SOURCES},
          "numpy_extras": _numpy_extras, "edge_keys": _keys_at_the_edge, "training": _training}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("seed", list(ROUND3))
def test_mutated_round3_sources_read_or_fail_and_their_outputs_load_weights_only(tmp_path, seed):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    path = ROUND3[seed](seeds)
    _exercise(path, tmp_path / "unmutated.pt")  # the seed itself opens and writes back
    work = tmp_path / "cases"
    work.mkdir()
    _fuzz(path.read_bytes(), f"round3:{seed}", path.suffix, work, ROUND3_CASES)
    assert not (seeds / "marker").exists()
