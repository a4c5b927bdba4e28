"""No output is riskier to load than its input (issue 18.2, 18.7).

Three hostile sources whose payload is inert in ckptlab: a placeholder whose class *name*
holds newlines and pickle opcodes (re-emitted as a GLOBAL it would become ``os.system``), a
placeholder for ``logging.FileHandler(marker)`` and one for ``zipfile.ZipFile(marker, "w")``
nested in a list (re-emitted, either creates the marker). Each is written with
``keep_extras`` into a .pt (flat and nested): the output loads with
``torch.load(weights_only=True)``, a ``weights_only=False`` load runs nothing (no marker),
and the report names every entry it did not keep. numpy values come back as tensors and
Python numbers, and the report says so. The pickle writer itself refuses any global outside
torch's weights_only allowlist.
"""
from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ckptlab
from ckptlab.errors import UnsafePickleError
from ckptlab.io.writers import torch_pickle
from tests.security.conftest import assert_one_line
from tests.security.crafted import FLOATS, Ops, as_zip

REPO = Path(__file__).resolve().parents[2]


def injected_name(ops: Ops, marker: Path) -> Ops:
    """``collections.OrderedDict\\n<opcodes: os.system("touch marker")>`` by STACK_GLOBAL: torch's
    own unpickler fails on the name (AttributeError); written back as GLOBAL it is code."""
    payload = f"OrderedDict\n0cos\nsystem\n(Vtouch {marker}\ntR0c"
    return ops.str("collections").str(payload).raw(b"\x93").empty_tuple().raw(b"\x81")  # STACK_GLOBAL NEWOBJ


def file_handler(ops: Ops, marker: Path) -> Ops:
    """``logging.FileHandler(marker)``: an uppercase class, inert as a placeholder."""
    return ops.glob("logging", "FileHandler").mark().str(str(marker)).tuple().reduce()


def nested_zipfile(ops: Ops, marker: Path) -> Ops:
    """``[1, zipfile.ZipFile(marker, "w")]``, with state set on it (BUILD)."""
    ops.empty_list().mark().int(1)
    ops.glob("zipfile", "ZipFile").mark().str(str(marker)).str("w").tuple().reduce()
    ops.empty_dict().str("comment").str("x").setitem().build()
    return ops.appends()


SOURCES = {"injected_name": injected_name, "file_handler": file_handler, "nested_zipfile": nested_zipfile}


def hostile_source(tmp_path: Path, name: str, marker: Path) -> Path:
    """``{"w": <tensor>, "epoch": 7, "hostile": <payload>, "opt": {"hostile": <payload>, "lr": 0.1}}``."""
    ops = Ops().empty_dict().str("w").tensor().setitem().str("epoch").int(7).setitem()
    SOURCES[name](ops.str("hostile"), marker).setitem()
    ops.str("opt").empty_dict().str("lr").str("0.1").setitem().str("hostile")
    SOURCES[name](ops, marker).setitem().setitem()
    return as_zip(tmp_path / f"{name}.pt", ops.stop())


LOAD_UNSAFELY = """
import sys, torch
for path in sys.argv[1:]:
    try:
        torch.load(path, weights_only=False)
    except Exception:
        pass
"""


def load_unsafely(paths: list[Path]) -> None:
    """``torch.load(weights_only=False)`` of each file in a child process (whatever it runs stays there)."""
    subprocess.run([sys.executable, "-c", LOAD_UNSAFELY, *map(str, paths)], check=True, timeout=300,
                   env={**os.environ, "PYTHONPATH": ""}, cwd=paths[0].parent)


@pytest.mark.parametrize("name", list(SOURCES))
def test_keep_extras_writes_no_hostile_source_back(tmp_path, name):
    marker = tmp_path / "marker"
    src = hostile_source(tmp_path, name, marker)
    ck = ckptlab.open(src)
    assert ck.keys() == ["w"] and not marker.exists()

    flat, nested = tmp_path / "flat.pt", tmp_path / "nested.pt"
    rep = ckptlab.remap(src, src, flat, keep_extras=True)
    assert {s.split(" ")[0] for s in rep.extras_not_kept} == {"hostile", "opt"}, rep.extras_not_kept
    assert all("weights_only=True" in s for s in rep.extras_not_kept)
    rep = ckptlab.remap(src, src, nested, keep_extras=True, nest=True)
    assert {s.split(" ")[0] for s in rep.extras_not_kept} == {"hostile", "opt"}, rep.extras_not_kept

    for out in (flat, nested):
        back = torch.load(out, weights_only=True)
        assert set(back) == {"w", "epoch"} and back["epoch"] == 7
        assert torch.equal(back["w"], torch.arange(FLOATS, dtype=torch.float32))
        assert b"system" not in out.read_bytes() and b"FileHandler" not in out.read_bytes()
    load_unsafely([flat, nested])
    assert not marker.exists()


def test_the_cli_does_not_say_every_extra_entry_was_kept(tmp_path):
    marker = tmp_path / "marker"
    src = hostile_source(tmp_path, "injected_name", marker)
    proc = subprocess.run([sys.executable, "-m", "ckptlab", "remap", str(src), str(src), "-o",
                           str(tmp_path / "out.pt"), "--keep-extras", "--no-progress"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert "every extra entry kept" not in proc.stdout and "extras kept except 2" in proc.stdout
    warning = proc.stderr.strip()
    assert warning.count("\n") == 0 and "could not keep 2 entries" in warning
    assert "\\n0cos\\nsystem" in warning  # the class name shown escaped, on one line
    assert not marker.exists()


def test_numpy_extras_come_back_as_tensors_and_python_numbers(tmp_path):
    arrays = {"mask": np.array([[True, False, True]]), "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
              "fortran": np.asfortranarray(np.arange(12, dtype=np.int64).reshape(3, 4)),
              "u16": np.arange(5, dtype=np.uint16)}
    scalars = {"best_acc": np.float64(0.8125), "step": np.int64(-3), "ok": np.bool_(True), "f16": np.float16(1.5)}
    src = tmp_path / "np.pt"
    torch.save({"w": torch.ones(2), "stats": {**arrays, "shared": arrays["f32"]}, **scalars}, src)
    out = tmp_path / "out.pt"
    rep = ckptlab.remap(src, src, out, keep_extras=True)
    assert rep.extras_not_kept == []
    converted = dict(s.split(" ", 1) for s in rep.extras_converted)
    assert set(converted) == {"stats", *scalars} and "numpy array written as a torch" in converted["stats"]
    assert "Python float" in converted["best_acc"] and "Python int" in converted["step"]

    back = torch.load(out, weights_only=True)
    for key, want in arrays.items():
        got = back["stats"][key]
        assert isinstance(got, torch.Tensor) and got.shape == want.shape, key
        assert np.array_equal(got.numpy(), want) and got.numpy().dtype == want.dtype, key
    assert back["stats"]["shared"] is back["stats"]["f32"]
    assert {k: (type(back[k]), back[k]) for k in scalars} == \
        {"best_acc": (float, 0.8125), "step": (int, -3), "ok": (bool, True), "f16": (float, 1.5)}


@pytest.mark.parametrize("value", [frozenset({1}), collections.defaultdict(int), os.system, slice(1, 2),
                                   collections.namedtuple("Pair", "a b")(1, 2), np.float64(1.0)],
                         ids=["frozenset", "defaultdict", "os.system", "slice", "namedtuple", "numpy_scalar"])
def test_the_pickle_writer_refuses_anything_weights_only_would_refuse(value):
    with pytest.raises(UnsafePickleError, match="weights_only=True") as err:
        torch_pickle.dumps({"x": [value]})
    assert_one_line(err.value)


def test_the_pickle_writer_writes_what_weights_only_reads(tmp_path):
    tree = {"od": collections.OrderedDict(a=1), "c": collections.Counter("aab"), "s": {1, 2}, "z": 1 + 2j,
            "b": b"\x00\xff", "ba": bytearray(b"q"), "size": torch.Size([2, 3]), "dev": torch.device("cpu"),
            "dt": [torch.float32, torch.bfloat16, torch.float8_e4m3fn, torch.uint16], "t": (None, True, 2**70, "é")}
    path = as_zip(tmp_path / "t.pt", bytes(torch_pickle.dumps(tree)))
    assert torch.load(path, weights_only=True) == tree


# -- report CSVs (18.8) -----------------------------------------------------------------------
FORMULAS = ["=cmd|' /C calc'!A0", '=HYPERLINK("http://evil.example","click")', "@SUM(1+1)", "+1+1", "-1+1",
            "\tx", "\rx"]


def test_report_csv_cells_never_start_a_formula(tmp_path):
    import csv

    src = tmp_path / "formulas.pt"
    torch.save({**{k: torch.ones(1) for k in FORMULAS}, "w": torch.ones(2)}, src)
    report = tmp_path / "report.csv"
    proc = subprocess.run([sys.executable, "-m", "ckptlab", "remap", str(src), str(src), "-o", str(tmp_path / "o.pt"),
                           "--report", str(report), "--no-progress"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    with open(report, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    cells = [c for row in rows for c in row.values() if c]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert {row["target"] for row in rows} == {"'" + k for k in FORMULAS} | {"w"}
    assert json.loads(ckptlab.remap(src, src, tmp_path / "o2.pt").to_json())["rows"][0]["target"] in FORMULAS  # JSON: as is


def test_an_entry_sharing_a_part_with_an_entry_not_kept_is_kept_whole(tmp_path):
    """``{"a": {"cfg": shared}, "b": [shared]}`` where ``shared`` holds an object: neither is
    kept, and ``b`` is never written with the half of ``shared`` converted before the object."""
    ops = Ops().empty_dict().str("w").tensor().setitem()
    ops.str("a").empty_dict().str("cfg").empty_dict().put(1).str("ok").int(1).setitem()
    ops.str("obj").glob("somelib", "Cfg").empty_tuple().raw(b"\x81").setitem().setitem().setitem()
    ops.str("b").empty_list().get(1).raw(b"a").setitem()
    src = as_zip(tmp_path / "shared.pt", ops.stop())
    out = tmp_path / "out.pt"
    rep = ckptlab.remap(src, src, out, keep_extras=True)
    assert {s.split(" ")[0] for s in rep.extras_not_kept} == {"a", "b"}
    assert set(torch.load(out, weights_only=True)) == {"w"}
