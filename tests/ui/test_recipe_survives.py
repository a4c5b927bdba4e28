"""A recipe survives a change of inputs that leaves it meaningful: switching the target between
a sample, a model definition and an uploaded file, or editing the kwargs, keeps accepted
suggestions and typed fixes; entries that then match nothing are named in one line; only a
new source and a new target (another demo pair) start from an empty recipe."""
from __future__ import annotations

import ckptlab
from ckptlab.recipe.model import Recipe
from ckptlab.ui.samples import PAIRS

from .conftest import SAMPLES, new_app, plain
from .test_app import accept, counts, no_failure, pick_pair, recipe_widget, upload, view

DDP = 6          # convnet saved from DistributedDataParallel ('module.') -> the plain convnet


def stale_line(at) -> list[str]:
    return [plain(w.value) for w in at.warning if "match nothing" in plain(w.value)]


def model_target(at, spec: str | None = None, kwargs: str | None = None):
    at.sidebar.radio(key="target_mode").set_value("Model definition").run()
    if spec is not None:
        at.sidebar.text_input(key="target_spec").input(spec).run()
    if kwargs is not None:
        at.sidebar.text_input(key="target_kwargs").input(kwargs).run()
    no_failure(at)
    return at


def test_the_recipe_survives_switching_the_target_and_editing_kwargs() -> None:
    at = pick_pair(new_app(), DDP)
    keys = len(ckptlab.open(SAMPLES / "convnet_rgb.pt"))
    accept(at, {"strip_prefix": "module."})                                  # an accepted suggestion
    assert counts(at)["renamed"] == keys and counts(at)["missing"] == 0

    model_target(at)                                  # the same model, as a definition (for Verify, Fine-tune)
    assert counts(at)["renamed"] == keys and counts(at)["missing"] == 0
    model_target(at, kwargs='{"in_chans": 4}')        # kwargs edited: conv1 takes a 4th channel
    assert counts(at)["renamed"] == keys - 1 and counts(at)["mismatch"] == 1

    view(at, "Shape fixes")                           # a fix the visitor chose
    at.selectbox(key="fix_op_conv1.weight").set_value("pad")
    at.selectbox(key="fix_dim_conv1.weight").set_value(1).run()
    at.button(key="fix_apply_conv1.weight").click().run()
    no_failure(at)
    assert counts(at)["adapted"] == 1
    kept = at.session_state["recipe"]
    assert [r.describe() for r in kept.rules] == ["strip_prefix 'module.'"] and "conv1.weight" in kept.adapt

    upload(at, "target", "convnet_rgba.pt", (SAMPLES / "convnet_rgba.pt").read_bytes())   # now an uploaded file
    assert at.session_state["recipe"] == kept
    assert counts(at)["adapted"] == 1 and counts(at)["renamed"] == keys - 1 and counts(at)["mismatch"] == 0
    assert not stale_line(at)

    model_target(at, spec="sample_ckpts.models:AttentionWrapper", kwargs="{}")   # a model the recipe does not fit
    assert at.session_state["recipe"] == kept                              # kept, and said to match nothing
    (line,) = stale_line(at)
    assert "strip_prefix 'module.'" in line and "adapt 'conv1.weight'" in line

    at.sidebar.radio(key="target_mode").set_value("Sample").run()          # back to the first target
    no_failure(at)
    assert at.session_state["recipe"] == kept and counts(at)["renamed"] == keys
    (line,) = stale_line(at)                     # in_chans 3 again: the pad is not needed, and the page says so
    assert "adapt 'conv1.weight'" in line and "strip_prefix" not in line


def test_a_new_demo_pair_starts_from_an_empty_recipe() -> None:
    at = pick_pair(new_app(), DDP)
    accept(at, {"strip_prefix": "module."})
    assert at.session_state["recipe"] != Recipe()
    pick_pair(at, 2)                                   # a new source and a new target
    assert at.session_state["recipe"] == Recipe()
    assert not stale_line(at)


def test_entries_that_match_nothing_are_named_and_the_rest_still_applies() -> None:
    at = pick_pair(new_app(), DDP)
    keys = len(ckptlab.open(SAMPLES / "convnet_rgb.pt"))
    recipe = ("rules:\n- strip_prefix: module.\n- drop: '^nothing\\.'\n"
              "map:\n  absent.weight: module.conv1.weight\n"
              "convert:\n- {from: 'blocks.{i}.qkv.weight', to: 'blocks.{i}.q.weight', ops: [transpose]}\n")
    recipe_widget(at).set_value(("kept.yaml", recipe.encode(), "application/x-yaml")).run()
    no_failure(at)
    assert counts(at)["renamed"] == keys and counts(at)["missing"] == 0      # the entries that fit still apply
    (line,) = stale_line(at)
    for entry in ("drop '^nothing\\.'", "map 'absent.weight' <- 'module.conv1.weight'", "convert 'blocks.{i}.qkv"):
        assert entry in line, (entry, line)
    assert "strip_prefix" not in line
    assert not at.error
    assert len(at.session_state["recipe"].convert) == 1                   # kept in the recipe, left out of the align
    assert PAIRS[DDP].target.file == "convnet_rgb.pt"
