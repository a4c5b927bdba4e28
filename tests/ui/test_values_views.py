"""The Values and Compare views through Streamlit's AppTest, and their pure helpers."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from streamlit.testing.v1 import AppTest

import ckptlab
from ckptlab.ui import compare, valuecache, values
from ckptlab.values.diff import layer_grid

from .conftest import SAMPLES


def _view_app(view: str, source: str, target: str, recipe: str | None = None) -> AppTest:
    def script(view, source, target, recipe):
        import ckptlab
        from ckptlab.ui import compare, values

        alignment = ckptlab.align(source, target, recipe=recipe, auto="high")
        (values if view == "values" else compare).show(alignment)

    at = AppTest.from_function(script, default_timeout=60, args=(view, source, target, recipe))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _fine_tuned_pair(tmp_path: Path) -> tuple[str, str, dict, dict]:
    g = torch.Generator().manual_seed(0)
    a = {f"layers.{i}.{k}.weight": torch.randn(8, 8, generator=g) for i in range(4) for k in ("attn.q", "mlp.up")}
    a["embed.weight"] = torch.randn(16, 8, generator=g)
    a["layers.2.attn.q.weight"][0, 0] = float("nan")
    b = {k: v.clone() for k, v in a.items()}
    b["layers.3.mlp.up.weight"] += 0.5
    save_file(a, tmp_path / "pre.safetensors")
    save_file(b, tmp_path / "tuned.safetensors")
    return str(tmp_path / "pre.safetensors"), str(tmp_path / "tuned.safetensors"), a, b


def test_values_view_shows_flags_first_and_switches_to_merged(tmp_path):
    valuecache.clear()
    source, target, a, _ = _fine_tuned_pair(tmp_path)
    at = _view_app("values", source, target)
    frame = at.dataframe[0].value
    assert frame.iloc[0]["key"] == "layers.2.attn.q.weight" and frame.iloc[0]["flags"] == "nan"
    assert len(frame) == len(a)
    want = ckptlab.stats(source)["embed.weight"]
    row = frame[frame["key"] == "embed.weight"].iloc[0]
    assert (row["min"], row["max"], row["zeros"]) == (want.min, want.max, want.zeros)
    at.toggle(key=values.FLAGGED_KEY).set_value(True).run()
    assert list(at.dataframe[0].value["key"]) == ["layers.2.attn.q.weight"]
    at.toggle(key=values.FLAGGED_KEY).set_value(False).run()
    at.text_input(key=values.SEARCH_KEY).set_value("mlp").run()
    assert set(at.dataframe[0].value["key"]) == {f"layers.{i}.mlp.up.weight" for i in range(4)}
    at.get("button_group")  # the side picker is drawn
    at.session_state[values.SIDE_KEY] = "Merged"
    at.run()
    assert not at.exception
    assert set(at.dataframe[0].value["key"]) == {f"layers.{i}.mlp.up.weight" for i in range(4)}
    assert len(at.get("plotly_chart")) == 1  # the histogram, source beside merged


def test_compare_view_draws_the_heatmap_and_a_pick_shows_histograms(tmp_path):
    valuecache.clear()
    source, target, a, b = _fine_tuned_pair(tmp_path)
    at = _view_app("compare", source, target)
    assert int({m.label: m.value for m in at.metric}["changed"]) == 1  # NaN in both at the same place: equal bits
    charts = at.get("plotly_chart")
    figure = json.loads(charts[0].proto.spec)
    heat = next(t for t in figure["data"] if t["type"] == "heatmap")
    assert heat["y"] == ["0", "1", "2", "3"] and heat["x"] == ["attn.q.weight", "mlp.up.weight"]
    clickable = next(t for t in figure["data"] if t["type"] == "scatter")
    assert "layers.3.mlp.up.weight" in clickable["customdata"]
    table = at.dataframe[0].value
    assert table.iloc[0]["target"] == "layers.3.mlp.up.weight"
    assert at.selectbox(key=compare.PICK_KEY).value == "layers.3.mlp.up.weight"
    assert len(charts) == 2  # heatmap + the picked tensor's histograms
    at.selectbox(key=compare.PICK_KEY).set_value("embed.weight").run()
    assert not at.exception and any("embed.weight" in t.value for t in at.text)


def test_compare_source_vs_merged_on_a_sample_pair():
    valuecache.clear()
    at = _view_app("compare", str(SAMPLES / "convnet_rgb.pt"), str(SAMPLES / "convnet_rgb_ddp.pt"))
    assert at.get("button_group")
    at.session_state[compare.MODE_KEY] = compare.VS_MERGED
    at.run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["equal"]) == 16 and int(metrics["changed"]) == 0


def test_clicked_key_reads_the_marker_customdata():
    assert compare.clicked_key({"selection": {"points": [{"x": "a", "y": "1", "customdata": "layers.1.a"}]}}) == "layers.1.a"
    assert compare.clicked_key({"selection": {"points": [{"customdata": ["layers.2.b"]}]}}) == "layers.2.b"
    assert compare.clicked_key({"selection": {"points": []}}) is None and compare.clicked_key(None) is None


def test_heatmap_figure_has_a_marker_per_filled_cell(tmp_path):
    source, target, _, _ = _fine_tuned_pair(tmp_path)
    grid = layer_grid(ckptlab.diff(source, target).pairs)
    fig = compare.heatmap_figure(grid)
    markers = fig.data[1]
    assert len(markers.customdata) == 8 and set(markers.customdata) == {k for row in grid["keys"] for k in row}


def test_content_key_changes_with_the_file_and_not_with_reopening(tmp_path):
    path = tmp_path / "x.safetensors"
    save_file({"w": torch.ones(3)}, path)
    k1 = valuecache.content_key(ckptlab.open(path))
    assert valuecache.content_key(ckptlab.open(path)) == k1
    save_file({"w": torch.zeros(3)}, path)
    assert valuecache.content_key(ckptlab.open(path)) != k1
    mem = ckptlab.Checkpoint.from_mapping({"w": torch.ones(3)})
    assert valuecache.content_key(mem) == valuecache.content_key(ckptlab.Checkpoint.from_mapping({"w": torch.ones(3)}))
    assert valuecache.content_key(mem) != valuecache.content_key(ckptlab.Checkpoint.from_mapping({"w": torch.zeros(3)}))


def test_the_page_reaches_statistics_and_compare_in_a_few_clicks():
    """Through the real page: a demo pair, the 'Values & charts' view, its Statistics and Compare parts."""
    from ckptlab.ui.samples import PAIRS

    from .test_app import kept_key, pick_pair, view

    valuecache.clear()
    index = next(i for i, p in enumerate(PAIRS) if p.title.startswith("Attention swap"))
    at = view(pick_pair(_page(), index), "Values & charts")
    at.segmented_control(key=kept_key(at, "values_part")).set_value("Statistics").run()
    assert not at.exception
    source = PAIRS[index].source.path
    frame = at.dataframe[0].value
    assert len(frame) == len(ckptlab.open(source))
    want = ckptlab.stats(source)
    first = frame.iloc[0]["key"]
    assert frame.iloc[0]["mean"] == want[first].mean
    at.segmented_control(key=kept_key(at, "values_part")).set_value("Compare").run()
    assert not at.exception
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["type"] for t in figure["data"]] == ["heatmap", "scatter"]
    expected = ckptlab.diff(source, PAIRS[index].target.path)
    assert int({m.label: m.value for m in at.metric}["changed"]) == expected.summary["changed"]


def _page() -> AppTest:
    from .conftest import new_app

    return new_app()


def test_a_scan_runs_once_per_content(tmp_path, monkeypatch):
    import sys

    valuecache.clear()
    source, target, _, _ = _fine_tuned_pair(tmp_path)
    stats_module = sys.modules[ckptlab.stats.__module__]
    calls = []
    real = stats_module.stats
    monkeypatch.setattr(stats_module, "stats", lambda *a, **k: calls.append(1) or real(*a, **k))
    at = _view_app("values", source, target)
    at.run()                                      # a rerun (e.g. a search typed): no new scan
    assert len(calls) == 1
    save_file({"embed.weight": torch.zeros(2)}, source)   # the file changes: a new scan
    _view_app("values", source, target)
    assert len(calls) == 2
