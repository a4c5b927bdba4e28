"""The Verify panel through AppTest: the speed and memory comparison over chosen sizes."""
from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from ckptlab.ui.verify_panel import RESULTS, parse_sizes

from .conftest import new_app

STACK = "tests.ui.speed_models:Stack"


def _compare(source_depth: int, target_depth: int, sizes: str, budget: float = 2.0) -> AppTest:
    at = new_app()
    at.sidebar.radio(key="target_mode").set_value("Model definition").run()
    at.sidebar.text_input(key="target_spec").input(STACK).run()
    at.sidebar.text_input(key="target_kwargs").input(json.dumps({"depth": target_depth})).run()
    spec = next(t for t in at.text_input if (t.key or "").startswith("verify_src_spec_"))
    spec.input(STACK).run()
    kwargs = next(t for t in at.text_input if (t.key or "").startswith("verify_src_kwargs_"))
    kwargs.input(json.dumps({"depth": source_depth})).run()
    next(t for t in at.text_input if (t.key or "").startswith("verify_sizes_")).input(sizes).run()
    at.number_input(key="verify_budget").set_value(budget).run()
    at.button(key="verify_speed").click().run()
    assert not at.exception, [e.value for e in at.exception]
    failures = [e.value for e in at.error if "would load" not in e.value]   # the demo source feeds nothing
    assert not failures, failures
    return at


def _speed_table(at: AppTest):
    return next(d.value for d in at.dataframe if "time ratio" in d.value.columns)


def test_a_4x_deeper_target_is_slower_at_every_chosen_size_and_both_curves_have_each_size() -> None:
    at = _compare(source_depth=2, target_depth=8, sizes="16, 8")
    table = _speed_table(at)
    assert list(table["size"]) == [8, 16]
    assert (table["time ratio"] > 1).all()                  # the sign, on a 4x difference
    figure = json.loads(at.get("plotly_chart")[-1].proto.spec)
    curves = [(t["name"], t["x"]) for t in figure["data"] if t.get("mode") == "lines+markers"]
    assert sorted(curves) == [("source", [8, 16]), ("source", [8, 16]), ("target", [8, 16]), ("target", [8, 16])]
    assert any("Parameters: source" in c.value for c in at.caption)


def test_identical_models_show_the_noisy_note_exactly_where_the_spread_includes_1() -> None:
    at = _compare(source_depth=2, target_depth=2, sizes="8", budget=2.0)
    report = next(v for k, v in at.session_state[RESULTS].items() if k[0] == "speed")
    point = report.points[0]
    warnings = [w.value for w in at.warning if w.value.startswith("Too noisy to tell")]
    assert bool(warnings) == point.noisy
    if not point.noisy:                                      # a clear verdict names the direction
        assert any(i.value.startswith("At size 8") for i in at.info)


def test_sizes_are_parsed_or_refused_in_one_line() -> None:
    assert parse_sizes("64, 16 32,16") == [16, 32, 64]
    for bad in ("", "a, 3", "0"):
        try:
            parse_sizes(bad)
        except Exception as exc:  # noqa: BLE001
            assert type(exc).__name__ == "CheckpointError" and "\n" not in str(exc)
        else:
            raise AssertionError(f"{bad!r} accepted")
