"""The Suggestions panel takes every kind of fragment the core can emit: each is shown with
an Accept button, accepting it changes the recipe, and one fragment that cannot be read
shows its error beside it without hiding the others. Then the real case: a Hugging Face
GPT-2 (``save_pretrained``) onto a nanoGPT, its known conversion accepted from the panel."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import safetensors.torch
import torch
from streamlit.testing.v1 import AppTest

import ckptlab
from ckptlab.recipe import edits as editing
from ckptlab.recipe.model import FRAGMENT_KEYS, Recipe
from ckptlab.vocab import RULE_KINDS
from tests.zoo import gpt, hf

from .conftest import SAMPLES, download_bytes, new_app, plain
from .test_app import accept, counts, no_failure, upload, view

CONVERT = [{"from": f"layer{i}.weight", "to": f"block{i}.weight", "ops": ["transpose"]} for i in range(5)]
# one fragment per kind: every rule kind and every other part a fragment may hold
EXAMPLES = {
    "strip_prefix": {"strip_prefix": "module."},
    "add_prefix": {"add_prefix": "net."},
    "replace": {"replace": {"pattern": "^conv1\\.", "with": "stem."}},
    "drop": {"drop": "^fc\\."},
    "keep": {"keep": "^conv"},
    "map": {"map": {"conv1.weight": "conv2.weight", "conv1.bias": "conv2.bias"}},
    "adapt": {"adapt": {"conv1.weight": {"op": "pad", "dim": 1, "fill": "mean"}}},
    "convert": {"convert": CONVERT},
    "container": {"container": "state_dict"},
    "dtype": {"dtype": {"to": "bfloat16", "keep": "norm"}},
    "keep_target": {"keep_target": "^fc\\."},
}
BAD = [{"convert": [{"from": "a.{i}.weight", "to": "b.weight", "ops": ["transpose"]}]},   # {i} on one side only
       {"frobnicate": "x"}]


def panel_script(fragments_json: str, source: str, target: str) -> None:
    """The panel alone, over a real alignment whose suggestions are the given fragments."""
    import dataclasses
    import json

    import ckptlab
    from ckptlab.align.types import Suggestion
    from ckptlab.ui import state, suggestions

    aligned = ckptlab.align(source, target, auto="none")
    made = [Suggestion(f, "medium", "for the test", 2) for f in json.loads(fragments_json)]
    state.panel(suggestions.show, dataclasses.replace(aligned, suggestions=made))


def panel_app(fragments: list[dict]) -> AppTest:
    at = AppTest.from_function(panel_script, default_timeout=60, args=(
        json.dumps(fragments), str(SAMPLES / "convnet_rgb.pt"), str(SAMPLES / "convnet_rgba.pt")))
    at.run()
    no_failure(at)
    return at


def button_keys(at: AppTest) -> set[str]:
    return {b.key for b in at.button}


def test_every_kind_the_core_can_emit_has_an_example() -> None:
    assert set(EXAMPLES) == set(RULE_KINDS) | set(FRAGMENT_KEYS)
    assert {editing.fragment_kind(f) for f in EXAMPLES.values()} == set(EXAMPLES)


def test_every_kind_is_shown_with_an_accept_and_accepting_changes_the_recipe() -> None:
    fragments = list(EXAMPLES.values())
    at = panel_app(fragments[:3] + BAD + fragments[3:])
    keys = button_keys(at)
    for kind, fragment in EXAMPLES.items():
        assert f"accept_{editing.fragment_id(fragment)}" in keys, kind
        assert any(editing.describe_fragment(fragment) in plain(m.value) for m in at.markdown), kind
    # the two bad fragments: an error each, beside them only, and no button
    shown = [plain(e.value) for e in at.error]
    assert len(shown) == 2, shown
    assert "suggestion 4" in shown[0] and "{i}" in shown[0]
    assert "suggestion 5" in shown[1] and "frobnicate" in shown[1]
    assert not {f"accept_{editing.fragment_id(f)}" for f in BAD} & keys
    # a conversion of five entries: its first three, then "+2 more", under one Accept
    captions = [plain(c.value) for c in at.caption]
    assert any("'layer0.weight' -> 'block0.weight': transpose" in c and "+2 more" in c for c in captions)
    recipe = Recipe()
    for kind, fragment in EXAMPLES.items():
        at.button(key=f"accept_{editing.fragment_id(fragment)}").click().run()
        no_failure(at)
        assert not [e for e in at.error if "frobnicate" not in e.value and "{i}" not in plain(e.value)], kind
        expected = editing.accept_suggestion(recipe, fragment)
        assert expected != recipe, kind
        assert at.session_state["recipe"] == expected, kind
        recipe = expected
    assert [c.to_dict() for c in recipe.convert] == CONVERT and recipe.dtype.to == "bfloat16"


@pytest.fixture(scope="module")
def gpt_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A transformers GPT2LMHeadModel saved by ``save_pretrained`` and a nanoGPT state_dict."""
    folder = tmp_path_factory.mktemp("gpt")
    hf.gpt2().save_pretrained(folder / "hf")
    torch.save(gpt.nanogpt().state_dict(), folder / "nano.pt")
    return folder / "hf" / "model.safetensors", folder / "nano.pt"


def test_gpt2_to_nanogpt_conversion_accepted_from_the_panel(gpt_pair, downloads) -> None:
    source, target = gpt_pair
    at = new_app()
    upload(at, "source", "model.safetensors", source.read_bytes())
    upload(at, "target", "nano.pt", target.read_bytes())
    before = ckptlab.align(str(source), str(target), auto="none")
    (conversion,) = [s.rule for s in before.suggestions if "convert" in s.rule]
    assert counts(at)["mismatch"] == before.summary["mismatch"] > 0
    assert any("convert 4 entries (transpose)" in plain(m.value) for m in at.markdown)
    accept(at, conversion)
    after = counts(at)
    assert after["mismatch"] == 0 and after["converted"] == 8          # 4 projections x 2 blocks
    view(at, "Download")
    at.radio(key="out_format").set_value(".safetensors").run()
    at.button(key="build_merged").click().run()
    no_failure(at)
    merged = safetensors.torch.load(download_bytes(at, "download_merged_button", downloads))
    original = safetensors.torch.load_file(str(source))
    transposed = [k for k in original if k.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight"))]
    assert len(transposed) == 8
    for key in transposed:
        assert torch.equal(merged[key], original[key].t()), key
    for key in set(original) - set(transposed):
        if key in merged:
            assert torch.equal(merged[key], original[key]), key
    assert set(merged) >= set(torch.load(target, weights_only=True)) - {"lm_head.weight"}
