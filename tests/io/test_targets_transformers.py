"""Model targets that need a config object: a typed argument built first, or a ``config.json``.

Real ``transformers`` classes with tiny configs, built on the meta device; the keys and shapes
must equal those of the same model built for real.
"""
from __future__ import annotations

import json

import pytest
import torch
import transformers  # pinned in requirements-dev.txt: a missing one is a failure, not a skip

from ckptlab.cli import main
from ckptlab.errors import ModelSpecError
from ckptlab.io.model_target import build_arguments, config_argument, model_target

TINY = {"hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 16,
        "vocab_size": 50, "max_position_embeddings": 16, "num_labels": 3}


def real_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(transformers.BertConfig(**TINY)).state_dict()


def shapes(ck) -> dict[str, tuple]:
    return {k: tuple(ck.info(k).shape) for k in ck.keys()}


def test_a_typed_config_argument_is_built_first_and_the_model_on_meta():
    ck = model_target("transformers:BertForSequenceClassification",
                      {"config": {"class": "transformers:BertConfig", "kwargs": TINY}})
    assert ck.metadata["built_on"] == "meta" and ck.metadata["class"] == "BertForSequenceClassification"
    assert next(iter(ck.meta_model.parameters())).device.type == "meta"
    assert shapes(ck) == {k: tuple(v.shape) for k, v in real_state().items()}
    assert ck.info("classifier.weight").shape == (3, 8)
    assert json.loads(ck.metadata["kwargs"])["config"]["class"] == "transformers:BertConfig"


def test_an_auto_class_builds_from_a_config_json(tmp_path):
    transformers.BertConfig(**TINY).save_pretrained(tmp_path)
    for where in (tmp_path / "config.json", tmp_path):
        ck = model_target("transformers:AutoModelForSequenceClassification", {"config": config_argument(where)})
        assert ck.metadata["class"] == "BertForSequenceClassification" and ck.metadata["built_on"] == "meta"
        assert shapes(ck) == {k: tuple(v.shape) for k, v in real_state().items()}


def test_cli_align_against_an_auto_class_and_a_config_json(tmp_path, capfd):
    transformers.BertConfig(**TINY).save_pretrained(tmp_path / "cfg")
    torch.save(real_state(), tmp_path / "bert.pt")
    code = main(["align", str(tmp_path / "bert.pt"), "transformers:AutoModelForSequenceClassification",
                 "--target-config", str(tmp_path / "cfg" / "config.json"), "--json"])
    stdout, stderr = capfd.readouterr()
    assert code == 0, stderr
    out = json.loads(stdout)
    assert out["summary"]["exact"] == len(real_state()) and out["summary"]["missing"] == 0
    config = {"config": {"class": "transformers:BertConfig", "kwargs": TINY}}
    code = main(["verify", str(tmp_path / "bert.pt"), "--model", "transformers:BertForSequenceClassification",
                 "--model-kwargs", json.dumps(config), "--json"])
    stdout, stderr = capfd.readouterr()
    assert code == 0 and json.loads(stdout)["ok"], stderr


def test_typed_argument_errors_are_one_line_and_name_the_argument(tmp_path):
    with pytest.raises(ModelSpecError, match=r"model argument 'config': building 'transformers:BertConfig' raised"):
        build_arguments({"config": {"class": "transformers:BertConfig", "kwargs": {"hidden_size": "wide"}}}, None)
    with pytest.raises(ModelSpecError, match="cannot import 'no_such_pkg'"):
        build_arguments({"config": {"class": "no_such_pkg:Config"}}, None)
    (tmp_path / "cfg.py").write_text("open('marker', 'w').write('ran')\nclass C: pass\n")
    with pytest.raises(ModelSpecError, match="refused"):  # a file spec needs --allow-code, as for models
        build_arguments({"config": {"class": f"{tmp_path / 'cfg.py'}:C"}}, None)
    assert not (tmp_path / "marker").exists()
    with pytest.raises(ModelSpecError, match="no config.json"):
        config_argument(tmp_path / "missing")
    assert build_arguments({"plain": {"class": 3}, "n": [1, 2]}, None) == {"plain": {"class": 3}, "n": [1, 2]}
