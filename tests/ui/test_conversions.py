"""The app with conversions: converted rows (sources listed), the conversion editor's preview
and errors beside each line, and "invert recipe" (through Streamlit's AppTest)."""
from __future__ import annotations

import io

import torch
import yaml
from streamlit.testing.v1 import AppTest

from ckptlab.recipe.model import Recipe
from tests.zoo.gpt_pair import TRANSPOSE_RECIPE, gpt2, nanogpt

from .conftest import download_bytes, new_app, plain
from .test_app import editor

PT = "application/octet-stream"


def _bytes(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _no_failure(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _gpt_pair() -> AppTest:
    torch.manual_seed(0)
    at = new_app()
    for role, model in (("source", gpt2()), ("target", nanogpt())):
        at.sidebar.radio(key=f"{role}_mode").set_value("Upload").run()
        at.sidebar.file_uploader(key=f"{role}_upload").set_value((f"{role}.pt", _bytes(model.state_dict()), PT)).run()
        _no_failure(at)
    return at


def _load_recipe(at: AppTest, recipe: dict, name: str = "r.yaml") -> AppTest:
    from ckptlab.ui import rules

    editor(at, "Recipe")
    version = at.session_state[rules.UPLOAD_VERSION] if rules.UPLOAD_VERSION in at.session_state else 0
    at.file_uploader(key=f"recipe_upload_{version}").set_value((name, yaml.safe_dump(recipe).encode(), "application/x-yaml")).run()
    _no_failure(at)
    editor(at, "Conversions")                 # the previews and errors sit beside the grid
    return at


def _counts(at: AppTest) -> dict[str, int]:
    return {m.label.split(" ", 1)[1]: int(m.value) for m in at.metric}


def test_a_convert_recipe_gives_converted_rows_a_preview_and_an_inverse(downloads) -> None:
    at = _load_recipe(_gpt_pair(), TRANSPOSE_RECIPE)
    assert _counts(at)["converted"] == 8 and _counts(at)["mismatch"] == 0
    frame = at.dataframe[0].value
    converted = frame[frame["status"].astype(str).str.contains("converted")]
    assert len(converted) == 8
    row = converted[converted["target"] == "h.0.attn.c_proj.weight"].iloc[0]
    assert row["source"] == "h.0.attn.c_proj.weight" and row["reason"].startswith("convert 1: transpose of")
    previews = [t.value for t in at.text if t.value.startswith("convert 1:")]
    assert previews == ["convert 1: 8 groups; 'h.0.attn.c_attn.weight' (16, 48) -> 'h.0.attn.c_attn.weight' (48, 16)"]
    editor(at, "Recipe")
    at.button(key="invert_recipe").click().run()
    _no_failure(at)
    inverse = Recipe.from_text(download_bytes(at, "download_inverse", downloads).decode())
    assert inverse == Recipe.from_dict(TRANSPOSE_RECIPE).inverted()
    assert any("from: h.{i}.{m}.{p}.weight" in c.value for c in at.code)


def test_a_conversion_that_does_not_work_says_why_beside_it_and_the_page_keeps_working() -> None:
    bad = {"convert": [{"from": "h.{i}.attn.c_atn.weight", "to": "h.{i}.attn.c_attn.weight", "ops": ["transpose"]},
                       {"from": "h.{i}.mlp.c_fc.weight", "to": "h.{i}.mlp.c_fc.weight", "ops": [{"chunk": 0}]},
                       {"from": "h.{i}.mlp.c_proj.weight", "to": "h.{i}.mlp.c_proj.weight", "ops": ["transpose"]}]}
    at = _load_recipe(_gpt_pair(), bad)
    errors = [plain(e.value) for e in at.error]
    assert "convert 1: 'h.{i}.attn.c_atn.weight' matches no source key (did you mean 'h.0.attn.c_attn.weight'?)" \
        in errors
    assert not any(e.startswith("convert 2") for e in errors)  # chunk: 0 into one part is valid...
    frame = at.dataframe[0].value.set_index("target")
    assert "gives (16, 64) but the target is (64, 16)" in frame.loc["h.0.mlp.c_fc.weight", "reason"]  # ...but wrong
    assert _counts(at)["converted"] == 2  # line 3; line 1 stays out of the recipe
    kept = [c for c in at.session_state["recipe"].convert]
    assert [c.sources[0] for c in kept] == ["h.{i}.mlp.c_fc.weight", "h.{i}.mlp.c_proj.weight"]
