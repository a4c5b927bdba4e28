"""A visitor of the web app never runs code through "Model definition": the spec and every
typed argument must pass the app's allowlist (sample models, transformers models from a
config, the operator's ``CKPTLAB_MODEL_ALLOW`` / ``ckptlab app --allow-model``), checked
before any module is imported. The CLI and API keep building any importable spec."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ckptlab.cli import app_cmd, build_parser
from ckptlab.errors import ModelSpecError, PathNotAllowedError
from ckptlab.io.model_target import (
    MODEL_ALLOW_ENV,
    ModelAllowlist,
    build_model,
    model_target,
)
from tests.ui.conftest import new_app, plain

from .conftest import assert_one_line

STACK = "tests.ui.speed_models:Stack"


def model_definition(at: AppTest, spec: str, kwargs: dict) -> AppTest:
    at.sidebar.radio(key="target_mode").set_value("Model definition").run()
    at.sidebar.text_input(key="target_kwargs").input(json.dumps(kwargs)).run()
    at.sidebar.text_input(key="target_spec").input(spec).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def refusal(at: AppTest) -> str:
    """The sidebar's one error line, naming the setting that would allow the spec."""
    shown = [plain(e.value) for e in at.sidebar.error]
    assert len(shown) == 1, shown
    assert "\n" not in shown[0] and MODEL_ALLOW_ENV in shown[0] and "--allow-model" in shown[0], shown[0]
    return shown[0]


def target_keys(at: AppTest) -> set[str]:
    return set(at.dataframe[0].value["target"]) - {""}


def test_os_system_as_the_model_spec_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    at = model_definition(new_app(), "os:system", {"command": f"touch {marker}"})
    assert "'os:system' refused" in refusal(at)
    assert not marker.exists()


def test_a_typed_argument_naming_subprocess_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    payload = {"x": {"class": "subprocess:getoutput", "kwargs": {"cmd": f"touch {marker}"}}}
    at = model_definition(new_app(), "sample_ckpts.models:ConvNet", payload)
    assert "'subprocess:getoutput' refused" in refusal(at)
    assert not marker.exists()


def test_the_verify_panels_source_model_is_held_to_the_same_list(tmp_path: Path) -> None:
    from tests.ui.test_app import pick_pair, view

    marker = tmp_path / "ran"
    at = view(pick_pair(new_app(), 2), "Verify")
    next(t for t in at.text_input if (t.key or "").startswith("verify_src_spec_")).input("os:system").run()
    next(t for t in at.text_input if (t.key or "").startswith("verify_src_kwargs_")).input(
        json.dumps({"command": f"touch {marker}"})).run()
    at.button(key="verify_function").click().run()
    at.button(key="verify_speed").click().run()
    assert not at.exception
    shown = [plain(e.value) for e in at.error if "'os:system' refused" in plain(e.value)]
    assert shown and all(MODEL_ALLOW_ENV in s for s in shown), [e.value for e in at.error]
    assert not marker.exists()


def test_the_sample_models_and_a_transformers_model_from_a_config_still_build() -> None:
    at = model_definition(new_app(), "sample_ckpts.models:ConvNet", {"in_chans": 3})
    assert not at.sidebar.error and "conv1.weight" in target_keys(at)
    config = {"class": "transformers:GPT2Config", "kwargs": {"n_layer": 1, "n_embd": 8, "n_head": 2,
                                                            "vocab_size": 11, "n_positions": 4}}
    at = model_definition(at, "transformers:AutoModelForCausalLM", {"config": config})
    assert not at.sidebar.error, [e.value for e in at.sidebar.error]
    assert "transformer.h.0.attn.c_attn.weight" in target_keys(at)


def test_the_operators_env_var_widens_the_list(monkeypatch: pytest.MonkeyPatch) -> None:
    at = model_definition(new_app(), STACK, {"depth": 1})
    assert f"'{STACK}' refused" in refusal(at)
    monkeypatch.setenv(MODEL_ALLOW_ENV, "tests.ui.speed_models:*")
    at = model_definition(new_app(), STACK, {"depth": 1})
    assert not at.sidebar.error and "body.0.weight" in target_keys(at)


def test_ckptlab_app_allow_model_reaches_the_server_as_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODEL_ALLOW_ENV, "sample_ckpts.models:*")
    args = build_parser().parse_args(["app", "--allow-model", STACK, "--allow-model", "tests.zoo.gpt_pair:*"])
    env = app_cmd.child_env(args)
    assert env[MODEL_ALLOW_ENV] == f"sample_ckpts.models:*,{STACK},tests.zoo.gpt_pair:*"
    allow = ModelAllowlist.from_env(env=env)
    assert "body.0.weight" in model_target(STACK, {"depth": 1}, allow=allow).keys()
    with pytest.raises(ModelSpecError):
        model_target("tests.ui.speed_models:nn", {}, allow=allow)       # an import of that module, not listed
    with pytest.raises(ModelSpecError, match="not 'pkg.module:Name'"):
        app_cmd.check_allow_model(["os.system"])


def test_the_server_listens_on_localhost_unless_told_and_says_how_to_share() -> None:
    args = build_parser().parse_args(["app"])
    assert "--server.address=127.0.0.1" in app_cmd.command(args)
    assert "--address 0.0.0.0" in app_cmd.banner(args)
    shared = build_parser().parse_args(["app", "--address", "0.0.0.0"])
    assert "--server.address=0.0.0.0" in app_cmd.command(shared)


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable module that marks its import, defines a model and imports os.system."""
    marker = tmp_path / "imported"
    (tmp_path / "hostile_plugin.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\nfrom os import system\n"
        "from torch import nn\n\nclass Net(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.fc = nn.Linear(2, 3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "hostile_plugin", raising=False)
    return marker


def test_an_unlisted_module_is_never_imported(plugin: Path) -> None:
    with pytest.raises(ModelSpecError) as caught:
        build_model("hostile_plugin:Net", device="meta", allow=ModelAllowlist())
    assert_one_line(caught.value)
    assert not plugin.exists()


def test_a_wildcard_allows_what_the_module_defines_not_what_it_imports(plugin: Path, tmp_path: Path) -> None:
    allow = ModelAllowlist(("hostile_plugin:*",))
    assert list(model_target("hostile_plugin:Net", allow=allow).keys()) == ["fc.weight", "fc.bias"]
    marker = tmp_path / "ran"
    with pytest.raises(ModelSpecError, match="'hostile_plugin:system' refused"):
        build_model("hostile_plugin:system", {"command": f"touch {marker}"}, allow=allow)
    assert not marker.exists()


def test_typed_arguments_only_config_classes_and_no_remote_code() -> None:
    allow = ModelAllowlist()
    config = {"class": "transformers:GPT2Config", "kwargs": {"n_layer": 1, "n_embd": 8, "n_head": 2}}
    assert "lm_head.weight" in model_target("transformers:GPT2LMHeadModel", {"config": config}, allow=allow).keys()
    bad = [
        ("transformers:GPT2LMHeadModel", {"config": {"class": "transformers:pipeline", "kwargs": {}}}),
        ("transformers:GPT2LMHeadModel", {"config": {"class": "transformers:GPT2LMHeadModel", "kwargs": {}}}),
        ("transformers:pipeline", {}),
        ("transformers:AutoModelForCausalLM", {"config": config, "trust_remote_code": True}),
        ("transformers:AutoModelForCausalLM",
         {"config": {"class": "transformers:GPT2Config", "kwargs": {"auto_map": {"AutoModelForCausalLM": "x--m.M"}}}}),
        ("transformers:AutoModelForCausalLM",
         {"config": {"class": "transformers:GPT2Config", "kwargs": {"attn_implementation": "kernels-community/x"}}}),
        ("sample_ckpts.models:ConvNet", {"in_chans": {"class": "builtins:eval", "kwargs": {"source": "1"}}}),
    ]
    for spec, kwargs in bad:
        with pytest.raises(ModelSpecError) as caught:
            model_target(spec, kwargs, allow=allow)
        assert_one_line(caught.value)


def test_a_config_json_is_read_only_under_the_allowed_folders(tmp_path: Path) -> None:
    from transformers import GPT2Config

    inside, outside = tmp_path / "inside", tmp_path / "outside"
    for folder in (inside, outside):
        GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(folder)
    allow = ModelAllowlist(config_roots=(inside,))
    config = {"class": "transformers:AutoConfig.from_pretrained",
              "kwargs": {"pretrained_model_name_or_path": str(inside)}}
    assert "transformer.h.0.mlp.c_fc.weight" in model_target(
        "transformers:AutoModelForCausalLM", {"config": config}, allow=allow).keys()
    config["kwargs"]["pretrained_model_name_or_path"] = str(outside)
    with pytest.raises(PathNotAllowedError):
        model_target("transformers:AutoModelForCausalLM", {"config": config}, allow=allow)
    config["kwargs"] = {"pretrained_model_name_or_path": str(inside), "trust_remote_code": True}
    with pytest.raises(ModelSpecError):
        model_target("transformers:AutoModelForCausalLM", {"config": config}, allow=allow)


def test_the_cli_and_api_still_build_any_importable_spec(plugin: Path) -> None:
    assert list(model_target("hostile_plugin:Net").keys()) == ["fc.weight", "fc.bias"]
    assert plugin.exists()
