"""Model targets without typing code: a config.json uploaded alone makes the target the
transformers model it describes (built on the meta device); beside a checkpoint it gives the
model Verify and Fine-tune need; a config naming no class gets the catalogue's known models as
a picker; Fine-tune says what it needs instead of a blank page."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ckptlab.recipe.known import model_classes
from ckptlab.ui.finetune_panel import NEEDS_MODEL
from tests.zoo import hf

from .conftest import new_app, plain
from .test_app import counts, errors, no_failure, upload, view


@pytest.fixture(scope="module")
def gpt2_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny GPT-2 config.json and the model saved with it (``save_pretrained``)."""
    from transformers import GPT2Config

    folder = tmp_path_factory.mktemp("gpt2")
    GPT2Config(**hf.GPT2, architectures=["GPT2LMHeadModel"]).save_pretrained(folder / "config_only")
    hf.gpt2().save_pretrained(folder / "model")
    return {"config": folder / "config_only" / "config.json", "weights": folder / "model" / "model.safetensors"}


def upload_config(at: AppTest, name: str, data: bytes) -> AppTest:
    at.sidebar.radio(key="target_mode").set_value("Upload").run()
    at.sidebar.file_uploader(key="target_config").set_value((name, data, "application/json")).run()
    no_failure(at)
    return at


def finetune_info(at: AppTest) -> list[str]:
    return [plain(i.value) for i in at.info if "fine-tune plan needs the target as a model" in plain(i.value)]


def plan(at: AppTest):
    """The fine-tune plan's param groups."""
    return next(d.value for d in at.dataframe if "lr" in d.value.columns)


def test_a_config_json_alone_is_a_transformers_model_target(gpt2_files) -> None:
    from transformers import GPT2LMHeadModel

    at = new_app()
    upload(at, "source", "model.safetensors", gpt2_files["weights"].read_bytes())
    upload_config(at, "config.json", gpt2_files["config"].read_bytes())
    model_keys = set(GPT2LMHeadModel(__import__("transformers").GPT2Config(**hf.GPT2)).state_dict())
    frame = at.dataframe[0].value
    assert set(frame["target"]) - {""} == model_keys              # the model's own keys (lm_head included)
    assert counts(at)["exact"] == len(model_keys) - 1 and counts(at)["mismatch"] == 0
    assert any("tensors" in t.value for t in at.sidebar.text)
    view(at, "Fine-tune")
    assert not finetune_info(at)
    groups = plan(at)
    assert groups["tensors"].sum() == len(model_keys) - 1            # lm_head is tied to wte: one parameter
    view(at, "Verify")
    assert any("transformers:GPT2LMHeadModel" in plain(m.value) for m in at.markdown)
    assert not any("/target_config/" in plain(m.value) for m in at.markdown)      # no server path shown


def test_a_checkpoint_with_its_config_keeps_the_file_and_the_recipe(gpt2_files) -> None:
    at = new_app()
    upload(at, "source", "model.safetensors", gpt2_files["weights"].read_bytes())
    upload(at, "target", "model.safetensors", gpt2_files["weights"].read_bytes())
    view(at, "Fine-tune")
    assert finetune_info(at) == [plain(NEEDS_MODEL)]            # says what it needs, not a blank page
    before = counts(at)
    upload_config(at, "config.json", gpt2_files["config"].read_bytes())
    assert counts(at) == before                                   # the file stays the target
    assert any("transformers:GPT2LMHeadModel" in plain(c.value) for c in at.sidebar.caption)
    assert not finetune_info(at) and plan(at)["tensors"].sum() > 0


def test_a_config_naming_no_class_offers_the_catalogue_and_a_hostile_one_is_refused(gpt2_files, tmp_path) -> None:
    data = json.loads(gpt2_files["config"].read_text())
    data.pop("architectures", None)
    at = new_app()
    upload_config(at, "config.json", json.dumps(data).encode())
    picker = at.sidebar.selectbox(key="target_config_class")
    assert picker.options == ["AutoModel", *model_classes()] and "GPT2LMHeadModel" in picker.options
    bare = set(at.dataframe[0].value["target"]) - {""}
    assert "lm_head.weight" not in bare and "wte.weight" in bare          # AutoModel: the bare GPT2Model
    picker.set_value("GPT2LMHeadModel").run()
    no_failure(at)
    assert "lm_head.weight" in set(at.dataframe[0].value["target"])

    hostile = {**data, "auto_map": {"AutoModel": "evil--modeling.Evil"}}
    fresh = new_app()
    upload_config(fresh, "config.json", json.dumps(hostile).encode())
    lines = errors(fresh, fresh.sidebar)
    assert len(lines) == 1 and "auto_map" in lines[0] and "refused" in lines[0]
    upload_config(fresh, "config.json", b"{not json")
    assert any("config.json is not valid JSON" in e for e in errors(fresh, fresh.sidebar))
