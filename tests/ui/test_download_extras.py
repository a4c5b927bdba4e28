"""The Download view says what a build kept of a training checkpoint's other entries
(optimizer state, counters, hyper-parameters): the counts beside the built file, and a
warning naming every entry the chosen format could not hold and why, names escaped."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import ckptlab
from tests.merge import test_keep_extras

from .conftest import download_bytes, plain
from .test_app import new_app, no_failure, upload, view

EVIL = "[click](http://evil.example)"


class HParams:
    """A hyper-parameter object of a class ckptlab never imports (read as a placeholder)."""

    def __init__(self, width: int):
        self.width = width


@pytest.fixture
def training_ckpt(tmp_path) -> Path:
    """tests/merge/test_keep_extras.py's training checkpoint plus an object and a key made of markdown."""
    _, saved = test_keep_extras.training_ckpt.__wrapped__(tmp_path)      # its builder, called directly
    path = tmp_path / "train_objects.pt"
    torch.save({**saved, "hparams": HParams(8), EVIL: {"t": torch.ones(2)}}, path)
    return path


def built_app(path: Path, suffix: str, keep: bool):
    at = upload(upload(new_app(), "source", path.name, path.read_bytes()), "target", path.name, path.read_bytes())
    view(at, "Download")
    at.radio(key="out_format").set_value(suffix).run()
    if keep:
        at.checkbox(key="out_keep_extras").check().run()
    at.button(key="build_merged").click().run()
    no_failure(at)
    return at


def counts_line(at) -> str:
    return plain(next(c.value for c in at.caption if " written (" in c.value))


def test_keep_extras_to_safetensors_names_what_was_not_kept(training_ckpt, tmp_path, downloads) -> None:
    want = ckptlab.remap(training_ckpt, training_ckpt, tmp_path / "cli.safetensors", keep_extras=True)
    assert len(want.extras_not_kept) == 3            # the optimizer state, the object, the tensor dict
    at = built_app(training_ckpt, ".safetensors", keep=True)
    warnings = [w.value for w in at.warning if "could not be kept" in w.value]
    assert len(warnings) == 1
    shown = plain(warnings[0])
    for entry in want.extras_not_kept:               # "key (why)", exactly as the core says it
        assert f"- {entry}" in shown, (entry, shown)
    assert EVIL not in warnings[0] and "\\[click\\]\\(http\\:" in warnings[0]       # escaped, never a link
    beside = len(ckptlab.open(training_ckpt).beside)
    line = counts_line(at)
    assert f"other entries: {beside - 3} of {beside} kept" in line, line
    assert f"{len(want.rows)} tensors written ({want.summary['exact']} exact)" in line, line
    data = download_bytes(at, "download_merged_button", downloads)
    (tmp_path / "app.safetensors").write_bytes(data)
    with safe_open(tmp_path / "app.safetensors", "pt") as f:
        meta = f.metadata()
    assert {"step", "note", "history"} <= set(meta) and json.loads(meta["history"]) == [0.5, 0.25]
    assert not {"optimizer_state", "hparams", EVIL} & set(meta)
    report = json.loads(download_bytes(at, "download_report_json", downloads))
    assert report["extras_not_kept"] == want.extras_not_kept and report["outputs"] == ["merged.safetensors"]


def test_keep_extras_to_pt_keeps_all_but_the_object_and_says_so(training_ckpt, tmp_path, downloads) -> None:
    """A .pt holds only what torch.load(weights_only=True) reads: the object is named, the rest kept."""
    want = ckptlab.remap(training_ckpt, training_ckpt, tmp_path / "cli.pt", keep_extras=True)
    assert [s.split(" ")[0] for s in want.extras_not_kept] == ["hparams"]
    at = built_app(training_ckpt, ".pt", keep=True)
    warnings = [plain(w.value) for w in at.warning if "could not be kept" in w.value]
    assert len(warnings) == 1 and f"- {want.extras_not_kept[0]}" in warnings[0]
    beside = len(ckptlab.open(training_ckpt).beside)
    assert f"other entries: {beside - 1} of {beside} kept" in counts_line(at)
    merged = torch.load(io.BytesIO(download_bytes(at, "download_merged_button", downloads)), weights_only=True)
    assert merged["step"] == 2 and merged["note"] == "run-7" and torch.equal(merged[EVIL]["t"], torch.ones(2))
    assert "hparams" not in merged
    assert merged["optimizer_state"]["state"].keys() == torch.load(
        ckptlab.open(training_ckpt).path, weights_only=False)["optimizer_state"]["state"].keys()


def test_without_keep_extras_the_counts_say_none_were_kept(training_ckpt) -> None:
    at = built_app(training_ckpt, ".safetensors", keep=False)
    beside = len(ckptlab.open(training_ckpt).beside)
    assert f"the source's {beside} other entries not kept" in counts_line(at)
    assert not [w for w in at.warning if "could not be kept" in w.value]


def test_keep_the_layout_writes_the_weights_under_their_container(training_ckpt, downloads) -> None:
    at = built_app(training_ckpt, ".pt", keep=True)
    at.checkbox(key="out_nest").check().run()
    assert not [b for b in at.get("download_button") if b.proto.id.endswith("download_merged_button")]  # stale
    at.button(key="build_merged").click().run()
    no_failure(at)
    merged = torch.load(io.BytesIO(download_bytes(at, "download_merged_button", downloads)), weights_only=False)
    saved = torch.load(training_ckpt, weights_only=False)
    assert set(merged) == set(saved) - {"hparams"} and set(merged["model_state"]) == set(saved["model_state"])
    assert all(torch.equal(merged["model_state"][k], v) for k, v in saved["model_state"].items())
