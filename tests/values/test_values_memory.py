"""Value scans hold memory bounded by their windows, not by the file.

A 384 MB checkpoint of 4 MB float32 tensors (the shape of a real model: thousands of tensors
of a few MB, each smaller than the 16 MB window) is scanned by ``stats`` and ``diff`` in a
child process that samples its own anonymous memory (``RssAnon``) every 10 ms in a thread;
the peak above its level after ``import torch`` and ckptlab must stay far below the file's
size, whatever the reader: a torch zip, a legacy (pre-1.6) torch file, a safetensors file, a
sharded safetensors set (their bytes read window by window from the file), and a torch zip of
non-contiguous views (no file span: each tensor is loaded whole, so memory is bounded by the
largest tensors in flight instead).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.paths import ROOT

TENSORS = 96  # x 4 MB = 384 MB per checkpoint
ROWS = 1024  # x 1024 float32 = 4 MB
SPAN_BOUND_MB = 64  # DESIGN: <= 64 MB above import torch, whatever the file size
WHOLE_BOUND_MB = 128  # tensors loaded whole: two per pair and worker, plus what malloc keeps

CHILD = r"""
import gc, json, sys, threading


def anon_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


import torch
import ckptlab
import ckptlab.values.diff, ckptlab.values.stats

gc.collect()
base = anon_mb()
out = {}
for name, (what, *paths) in json.loads(sys.argv[1]).items():
    peak, done = [anon_mb()], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], anon_mb())
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if what == "stats":
        got = ckptlab.stats(paths[0])
        result = {"tensors": len(got), "mean": sum(s.mean for s in got) / len(got)}
    else:
        got = ckptlab.diff(*paths)
        result = {"pairs": len(got.pairs), "equal": got.summary["equal"]}
    done.set()
    sampler.join()
    del got
    out[name] = {"peak_mb": max(peak[0], anon_mb()) - base, **result}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The same 96 tensors as a .pt, a legacy .pt, a .safetensors, two safetensors shards with
    their index, and (each value + 1) a .pt of non-contiguous views that no reader can offer as
    a file span."""
    d = tmp_path_factory.mktemp("values_memory")
    base = torch.randn(ROWS, 1024, generator=torch.Generator().manual_seed(0))
    sd = {f"layers.{i}.weight": base + i for i in range(TENSORS)}
    torch.save(sd, d / "a.pt")
    torch.save(sd, d / "legacy.pt", _use_new_zipfile_serialization=False)
    save_file(sd, d / "a.safetensors")
    keys, weight_map = list(sd), {}
    for s, part_keys in enumerate((keys[:TENSORS // 2], keys[TENSORS // 2:])):
        name = f"model-{s + 1:05d}-of-00002.safetensors"
        save_file({k: sd[k] for k in part_keys}, d / name)
        weight_map.update(dict.fromkeys(part_keys, name))
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    torch.save({k: (v + 1).t().contiguous().t() for k, v in sd.items()}, d / "views.pt")
    assert not torch.load(d / "views.pt")["layers.0.weight"].is_contiguous()
    return {"pt": d / "a.pt", "legacy": d / "legacy.pt", "st": d / "a.safetensors",
            "shards": d / "model.safetensors.index.json", "views": d / "views.pt"}


def _measure(calls: dict[str, list]) -> dict[str, dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CKPTLAB_WORKERS": "2"}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(calls)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_stats_and_diff_memory_is_bounded_by_the_window_not_the_file(files):
    size_mb = files["pt"].stat().st_size / 2**20
    assert size_mb > 3 * max(SPAN_BOUND_MB, WHOLE_BOUND_MB)
    p = {k: str(v) for k, v in files.items()}
    got = _measure({
        "stats .pt": ["stats", p["pt"]],
        "stats legacy .pt": ["stats", p["legacy"]],
        "stats .safetensors": ["stats", p["st"]],
        "stats shards": ["stats", p["shards"]],
        "diff .pt vs .safetensors (equal bytes)": ["diff", p["pt"], p["st"]],
        "diff shards vs views .pt (float path)": ["diff", p["shards"], p["views"]],
        "stats views .pt (whole loads)": ["stats", p["views"]],
    })
    # the scans did the work: every tensor read, the right pairs equal
    for name in ("stats .pt", "stats legacy .pt", "stats .safetensors", "stats shards"):
        assert got[name]["tensors"] == TENSORS
        assert got[name]["mean"] == pytest.approx((TENSORS - 1) / 2, abs=0.01)
    assert got["stats views .pt (whole loads)"]["mean"] == pytest.approx((TENSORS + 1) / 2, abs=0.01)
    assert got["diff .pt vs .safetensors (equal bytes)"] == {**got["diff .pt vs .safetensors (equal bytes)"],
                                                            "pairs": TENSORS, "equal": TENSORS}
    assert got["diff shards vs views .pt (float path)"]["equal"] == 0
    peaks = {name: round(r["peak_mb"], 1) for name, r in got.items()}
    over = {name: mb for name, mb in peaks.items()
            if mb >= (WHOLE_BOUND_MB if "views" in name else SPAN_BOUND_MB)}
    assert not over, f"anonymous memory above import torch, MB (file {size_mb:.0f} MB): {peaks}"
