"""Parameters by module for the treemap: totals, worst status, separate unused root, depth cap."""
from __future__ import annotations

import pandas as pd
import torch

import ckptlab
from ckptlab.align import module_tree as modtree
from ckptlab.align.matcher import Row
from ckptlab.recipe.model import Recipe
from tests.paths import SAMPLES


def row(target, source, status, tshape=None, sshape=None):
    return Row(target, source, status, tshape, sshape, None, None, "")


def check_totals(frame: pd.DataFrame) -> None:
    """Every parent's value is at least the sum of its children (plotly's 'total' rule)."""
    children = frame[frame["parent"] != ""].groupby("parent")["value"].sum()
    values = frame.set_index("id")["value"]
    for parent, total in children.items():
        assert values[parent] >= total, parent


def test_story_sample_totals_and_statuses() -> None:
    source, target = SAMPLES / "font_unet_self_attention.pt", SAMPLES / "font_unet_linear_attention.pt"
    al = ckptlab.align(str(source), str(target), Recipe(), auto="none")
    frame = modtree.module_frame(al.rows)
    check_totals(frame)
    nodes = frame.set_index("id")
    target_sd = torch.load(target, weights_only=True)
    source_sd = torch.load(source, weights_only=True)
    assert nodes.loc[modtree.TARGET_ROOT, "value"] == sum(max(1, t.numel()) for t in target_sd.values())
    unused = {r.source for r in al.rows if r.status == "unused"}
    assert nodes.loc[modtree.UNUSED_ROOT, "value"] == sum(max(1, source_sd[k].numel()) for k in unused)
    # every leaf carries its row's status; a module the worst of its leaves
    for r in al.rows:
        root = modtree.TARGET_ROOT if r.target is not None else modtree.UNUSED_ROOT
        assert nodes.loc[modtree.node_id(root, r.target or r.source), "status"] == r.status
    missing = [r.target for r in al.rows if r.status == "missing"]
    for key in missing:
        parent = modtree.node_id(modtree.TARGET_ROOT, key.rsplit(".", 1)[0])
        assert nodes.loc[parent, "status"] == "missing"
    assert nodes.loc[modtree.TARGET_ROOT, "status"] == "missing"


def test_worst_status_wins_and_values_sum() -> None:
    rows = [row("a.x.weight", "a.x.weight", "exact", (2, 3)), row("a.y.bias", None, "missing", (4,)),
            row("b.weight", "b.weight", "renamed", (5,)), row(None, "old.w", "unused", None, (7, 1))]
    nodes = modtree.module_frame(rows).set_index("id")
    assert nodes.loc["target/a", "status"] == "missing"
    assert nodes.loc["target/a", "value"] == 10 and nodes.loc["target/a", "tensors"] == 2
    assert nodes.loc["target/b", "status"] == "renamed"
    assert nodes.loc["target", "value"] == 15
    assert nodes.loc["unused source keys/old.w", "value"] == 7
    assert nodes.loc["unused source keys/old", "parent"] == "unused source keys"
    assert nodes.loc["target/a.x.weight", "parent"] == "target/a.x"
    assert nodes.loc["target/a.x.weight", "label"] == "weight"


def test_big_checkpoint_is_cut_to_module_level() -> None:
    rows = [row(f"layers.{i}.{p}.weight", f"layers.{i}.{p}.weight", "exact", (8, 8))
            for i in range(500) for p in ("q", "k", "v", "o")]
    full = modtree.module_frame(rows, max_nodes=10**6)
    cut = modtree.module_frame(rows, max_nodes=1000)
    assert len(full) > 1000 >= len(cut)
    check_totals(cut)
    assert cut.set_index("id").loc["target", "value"] == 500 * 4 * 64
    assert cut["id"].str.count(r"\.").max() < full["id"].str.count(r"\.").max()


def test_scalars_and_empty_tensors_stay_visible() -> None:
    nodes = modtree.module_frame([row("t", "t", "exact", ()), row("e", "e", "exact", (0, 3))]).set_index("id")
    assert nodes.loc["target/t", "value"] == 1 and nodes.loc["target/e", "value"] == 1
    assert modtree.module_frame([]).empty


def test_selection_prefix_and_under() -> None:
    assert modtree.selection_prefix("target/encoder.layer1") == ("target", "encoder.layer1")
    assert modtree.selection_prefix("target") == ("target", "")
    assert modtree.under("encoder.layer1.weight", "encoder.layer1")
    assert modtree.under("encoder.layer1", "encoder.layer1")
    assert not modtree.under("encoder.layer10.weight", "encoder.layer1")
    assert modtree.under("anything", "") and not modtree.under(None, "")
    assert set(modtree.STATUS_COLOURS) == set(modtree.SEVERITY)
