"""The Verify panel through AppTest: the speed and memory comparison over chosen sizes."""
from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from ckptlab.ui.verify_panel import RESULTS, parse_sizes

from .conftest import new_app, plain
from .test_app import view

STACK = "tests.ui.speed_models:Stack"


@pytest.fixture(autouse=True)
def stack_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test models are not among the app's built-in models: the operator lists them."""
    monkeypatch.setenv("CKPTLAB_MODEL_ALLOW", STACK)


def _compare(source_depth: int, target_depth: int, sizes: str, budget: float = 2.0) -> AppTest:
    at = new_app()
    at.sidebar.radio(key="target_mode").set_value("Model definition").run()
    at.sidebar.text_input(key="target_spec").input(STACK).run()
    at.sidebar.text_input(key="target_kwargs").input(json.dumps({"depth": target_depth})).run()
    view(at, "Verify")
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


# -- the fine-tune plan: a grown head trains at the head rate ---------------------------
def _projector_with_grown_head() -> tuple[AppTest, int]:
    import ckptlab
    from ckptlab.recipe import edits as editing
    from ckptlab.ui.samples import PAIRS

    pair = next(i for i, p in enumerate(PAIRS) if p.source.file == "projector.pt")
    at = new_app()
    at.sidebar.selectbox(key="pair").set_value(PAIRS[pair].title).run()
    strip = {"strip_prefix": "classifier."}
    at.button(key=f"accept_{editing.fragment_id(strip)}").click().run()
    head = next(s.rule for s in ckptlab.align(PAIRS[pair].source.path, PAIRS[pair].target.path,
                                              {"rules": [strip]}, auto="none").suggestions if "adapt" in s.rule)
    at.button(key=f"accept_{editing.fragment_id(head)}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at, pair


def _groups(at: AppTest) -> dict[str, tuple[float, int]]:
    frame = next(d.value for d in at.dataframe if "lr" in d.value.columns)
    return {row["name"]: (row["lr"], row["tensors"]) for _, row in frame.iterrows()}


def test_accepting_the_head_pad_puts_the_grown_head_at_the_head_rate_and_says_so() -> None:
    import torch

    from ckptlab.ui.samples import PAIRS

    at, pair = _projector_with_grown_head()
    view(at, "Fine-tune")
    target = torch.load(PAIRS[pair].target.path, weights_only=True)
    backbone = [k for k in target if k.startswith("backbone.") and "running" not in k and "num_batches" not in k]
    groups = _groups(at)
    assert groups["new"][0] == 1e-3 * 10 and groups["new"][1] == 2          # fc.weight, fc.bias
    assert groups["pretrained"] == (1e-3, len(backbone))
    assert any("New or trained as new: 2 tensors" in c.value for c in at.caption)
    assert any("`fc.weight: rows 10..99 new (pad dim 0 (fill init)), rows 0..9 pretrained`" in c.value
               for c in at.caption)
    code = next(c.value for c in at.code if "def param_groups" in c.value)
    assert "'fc.weight'" not in code.split("PRETRAINED = ")[1].splitlines()[0]
    at.checkbox(key="ft_grown_as_new").uncheck().run()                     # the user's choice, said out loud
    assert "new" not in _groups(at) and _groups(at)["pretrained"][1] == len(backbone) + 2
    assert any("Left at the base rate" in c.value for c in at.caption)


def test_no_field_of_the_verify_and_finetune_panels_shows_a_placeholder() -> None:
    at, _ = _projector_with_grown_head()
    mine = []
    for name in ("Fine-tune", "Verify"):                  # the two panels are two views
        view(at, name)
        mine += [t for t in at.text_input if (t.key or "").startswith(("ft_", "verify_"))]
    assert {t.key for t in mine} >= {"ft_freeze", "ft_as_new"}
    assert all(not t.proto.placeholder for t in mine), [(t.key, t.proto.placeholder) for t in mine]


def test_function_check_of_the_grown_head_compares_the_kept_rows() -> None:
    """The projector's own output (8 wide) is not the head's: refused. The classifier inside
    it (10 classes) vs the grown 100-class model: rows 0..9 compared, equal up to float."""
    at, _ = _projector_with_grown_head()
    view(at, "Verify")
    at.button(key="verify_function").click().run()
    assert any("8 is not a row count the adapters kept (10)" in plain(e.value) for e in at.error), \
        [e.value for e in at.error]
    next(t for t in at.text_input if (t.key or "").startswith("verify_src_spec_")).input(
        "sample_ckpts.models:Classifier").run()
    next(t for t in at.text_input if (t.key or "").startswith("verify_src_kwargs_")).input(
        '{"num_classes": 10}').run()
    at.button(key="verify_function").click().run()
    assert not at.exception
    verdict = next(plain(s.value) for s in at.success if s.value.startswith("Function preservation"))
    assert "compared: the output rows 0..9 of dim 1 only (source 10, target 100" in verdict


def test_warm_start_report_calls_a_shape_mismatch_a_size_mismatch_not_missing() -> None:
    from ckptlab.ui.samples import PAIRS

    pair = next(i for i, p in enumerate(PAIRS) if p.source.file == "projector.pt")
    at = new_app()
    at.sidebar.selectbox(key="pair").set_value(PAIRS[pair].title).run()
    from ckptlab.recipe import edits as editing

    at.button(key=f"accept_{editing.fragment_id({'strip_prefix': 'classifier.'})}").click().run()
    view(at, "Verify")
    text = next(m.value for m in at.markdown if m.value.startswith("**Warm-start report**"))
    missing = text.split("**Missing keys**")[1].split("**Unexpected keys**")[0]
    mismatch = text.split("**Size mismatch**")[1]
    assert "fc.weight" not in missing and ": 0" in missing
    assert "`fc.weight` (10, 16) vs model (100, 16)" in mismatch and "RAISES" in mismatch
