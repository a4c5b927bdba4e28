"""The alignment table as a visitor reads it at 1280x720: status and reason first, keys with
their shared prefix folded and long keys elided in the middle (never at the end), every
status a visible pill with its count, the compact layout for projectors."""
from __future__ import annotations

import io

import pytest
import torch
from streamlit.testing.v1 import AppTest

import ckptlab
from ckptlab.ui import table as ui_table
from ckptlab.ui.icons import STATUS_ORDER
from ckptlab.ui.samples import PAIRS

from .conftest import SAMPLES, new_app, plain
from .test_app import counts, no_failure, pick_pair, table, upload


def shown(at: AppTest):
    """The table as drawn: the frame with the columns in the order the page shows them."""
    frame = at.dataframe[0]
    order = list(frame.proto.column_order)
    return frame.value, order


@pytest.mark.parametrize("key", [
    "module._orig_mod.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
    "model.submodule.submodule.down.2.num_batches_tracked",
    "x" * 90,
])
def test_a_long_key_loses_its_middle_never_its_end(key: str) -> None:
    short = ui_table.elide(key, 32)
    assert len(short) == 32 and ui_table.ELLIPSIS in short
    head, tail = short.split(ui_table.ELLIPSIS)
    assert key.startswith(head) and key.endswith(tail) and len(tail) >= len(head)
    if "." in key:
        assert key.endswith("." + tail)                       # the tail starts at a name


def test_keys_that_differ_only_inside_keep_their_ends() -> None:
    keys = [f"encoder.layers.{i}.self_attention.query_key_value.weight" for i in (3, 13)]
    short = [ui_table.elide(k, 32) for k in keys]
    assert all(s.endswith("self_attention.query_key_value.weight"[-20:]) for s in short)


def test_the_common_prefix_is_folded_at_a_dot_and_never_eats_a_whole_key() -> None:
    assert ui_table.common_prefix(["module._orig_mod.a.w", "module._orig_mod.b.w", ""]) == "module._orig_mod."
    assert ui_table.common_prefix(["conv1.weight", "conv1.bias"]) == "conv1."
    assert ui_table.common_prefix(["a.b", "a.b.c"]) == "a."           # "a.b" must keep a name
    assert ui_table.common_prefix(["layer.weight", "lay.bias"]) == ""


def ddp_compiled(tmp_path) -> bytes:
    """A DDP + torch.compile checkpoint (every key under ``module._orig_mod.``) of the RGB net."""
    state = torch.load(SAMPLES / "convnet_rgb.pt", weights_only=True)
    buffer = io.BytesIO()
    torch.save({f"module._orig_mod.{k}": v for k, v in state.items()}, buffer)
    return buffer.getvalue()


def test_a_shared_prefix_is_said_once_above_the_table_and_left_out_of_the_cells(tmp_path) -> None:
    at = upload(new_app(), "source", "ddp_compiled.pt", ddp_compiled(tmp_path))
    at.sidebar.radio(key="target_mode").set_value("Server path").run()
    at.sidebar.text_input(key="target_path").input(str(SAMPLES / "convnet_rgb.pt")).run()
    no_failure(at)
    frame, order = shown(at)
    assert order[:4] == ["status", "target_key", "source_key", "reason"]          # what matters first
    sources = frame.loc[frame["source"] != "", ["source", "source_key"]]
    assert len(sources) == len(torch.load(SAMPLES / "convnet_rgb.pt", weights_only=True))
    assert all(s.startswith("module._orig_mod.") for s in sources["source"])          # whole keys kept
    assert all(not s.startswith("module.") and s == full.removeprefix("module._orig_mod.")
               for full, s in zip(sources["source"], sources["source_key"]))
    assert any("module.\\_orig\\_mod." in c.value or "module._orig_mod." in plain(c.value) for c in at.caption)


def test_every_status_is_a_visible_pill_with_its_count_and_filters_the_rows() -> None:
    at = pick_pair(new_app(), 1)                                    # attention swap
    expected = ckptlab.align(PAIRS[1].source.path, PAIRS[1].target.path, auto="none")
    pills = at.pills(key="status_filter")
    assert list(pills.options) == [f"{s} {expected.summary[s]:,}" for s in STATUS_ORDER]
    assert list(pills.value) == list(STATUS_ORDER)
    pills.set_value(["missing", "unused"]).run()
    frame, _ = shown(at)
    assert sorted(s[0] for s in frame["status"]) == sorted(
        r.status for r in expected.rows if r.status in ("missing", "unused"))


def test_rows_are_tinted_by_status() -> None:
    at = pick_pair(new_app(), 2)                                    # RGB -> RGBA: one mismatch, exact rows
    styles = at.dataframe[0].proto.arrow_data.styler.styles
    frame = table(at)
    mismatch_row = [list(s) for s in frame["status"]].index(["mismatch"])
    rules = dict(rule.split("{", 1) for rule in styles.replace("\n", "").split("}") if "{" in rule)
    row_colour = {selector.strip().rsplit("_row", 1)[-1].split("_col")[0]: css
                  for selector, css in rules.items() for selector in selector.split(",")}
    assert ui_table.TINT["mismatch"] in row_colour[str(mismatch_row)]
    assert ui_table.TINT["exact"] in row_colour[str(0 if mismatch_row else 1)]


def test_search_commits_while_typing() -> None:
    at = pick_pair(new_app(), 1)
    search = at.text_input(key="key_search")
    assert search.proto.live_debounce_ms == 250                    # applies 250 ms after the last key
    search.input("ATTN").run()
    frame = table(at)
    assert len(frame) and all("attn" in (t + s).lower() for t, s in zip(frame["target"], frame["source"]))


def test_the_compact_layout_drops_shapes_dtypes_and_the_explanation() -> None:
    at = pick_pair(new_app(), 1)
    _, order = shown(at)
    assert "shapes" in order and any(PAIRS[1].explain[:30] in plain(c.value) for c in at.caption)
    at.sidebar.toggle(key="compact_layout").set_value(True).run()
    no_failure(at)
    _, order = shown(at)
    assert order == ["status", "target_key", "source_key", "reason"]
    assert not any(PAIRS[1].explain[:30] in plain(c.value) for c in at.caption)
    assert counts(at)["exact"] > 0


def test_big_counts_have_thousands_separators_and_the_treemap_rounds_down() -> None:
    from ckptlab.ui.charts import fed_text

    state = {f"blocks.{i}.w": torch.zeros(1) for i in range(1200)}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    at = upload(new_app(), "source", "big.pt", buffer.getvalue())
    at = upload(at, "target", "big_too.pt", buffer.getvalue())
    assert {m.label.split(" ", 1)[1]: m.value for m in at.metric}["exact"] == "1,200"
    assert fed_text(1197, 1200) == "1,197 of 1,200 (99%)" and fed_text(1200, 1200).endswith("(100%)")
    assert fed_text(1, 1200) == "1 of 1,200 (0%)"
