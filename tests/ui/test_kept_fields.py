"""Fields a user types into in the Fine-tune and Verify views keep their values when another
view is opened and closed (Streamlit drops the state of widgets a run does not draw), and the
kept values are the ones the plan and its code use."""
from __future__ import annotations

import pytest

from ckptlab.io.allowed_roots import OUTPUT_ROOTS_ENV
from sample_ckpts.models import Classifier

from .test_app import grown_head_app, new_app, no_failure, pick_pair, view


def groups(at):
    return next(d.value for d in at.dataframe if "lr" in d.value.columns)


def plan_code(at) -> str:
    return next(c.value for c in at.code if "def param_groups" in c.value)


def test_finetune_fields_survive_a_view_switch_and_feed_the_plan() -> None:
    at = view(pick_pair(new_app(), 3), "Fine-tune")          # 10 -> 100 classes: pretrained + new groups
    at.number_input(key="ft_lr").set_value(0.05).run()
    at.number_input(key="ft_mult").set_value(4.0).run()
    at.text_input(key="ft_freeze").input(r"^backbone\.0\.").run()
    at.checkbox(key="ft_freeze_loaded").check().run()
    at.checkbox(key="ft_freeze_loaded").uncheck().run()
    no_failure(at)
    typed = groups(at).set_index("name")["lr"].to_dict()
    assert typed == {"pretrained": pytest.approx(0.05), "new": pytest.approx(0.2)}
    for other in ("Download", "Verify", "Alignment"):
        view(view(at, other), "Fine-tune")
        assert at.number_input(key="ft_lr").value == pytest.approx(0.05), other
        assert at.number_input(key="ft_mult").value == pytest.approx(4.0), other
        assert at.text_input(key="ft_freeze").value == r"^backbone\.0\.", other
        assert groups(at).set_index("name")["lr"].to_dict() == typed, other
        namespace: dict = {}
        exec(compile(plan_code(at), "plan.py", "exec"), namespace)     # the shown code, run as a user would
        model = Classifier(100)
        rates = {g["name"]: g["lr"] for g in namespace["param_groups"](model)}
        assert rates == {"pretrained": pytest.approx(0.05), "new": pytest.approx(0.2)}, other
        assert not model.backbone[0].weight.requires_grad and model.backbone[1].weight.requires_grad
    assert not at.warning or all("ft_" not in w.value for w in at.warning)


def test_verify_fields_survive_a_view_switch() -> None:
    at = view(pick_pair(new_app(), 3), "Verify")
    spec = next(t for t in at.text_input if t.key.startswith("verify_src_spec_"))
    sizes = next(t for t in at.text_input if t.key.startswith("verify_sizes_"))
    kwargs = next(t for t in at.text_input if t.key.startswith("verify_src_kwargs_"))
    spec_key, sizes_key, kwargs_key = spec.key, sizes.key, kwargs.key
    sizes.input("8, 24").run()
    at.text_input(key=kwargs_key).input('{"num_classes": 10}  ').run()
    at.text_input(key=spec_key).input("sample_ckpts.models:Classifier ").run()
    at.number_input(key="verify_budget").set_value(3.0).run()
    at.number_input(key="verify_threads").set_value(2).run()
    no_failure(at)
    view(view(at, "Fine-tune"), "Verify")
    assert at.text_input(key=sizes_key).value == "8, 24"
    assert at.text_input(key=kwargs_key).value == '{"num_classes": 10}  '
    assert at.text_input(key=spec_key).value == "sample_ckpts.models:Classifier "
    assert at.number_input(key="verify_budget").value == pytest.approx(3.0)
    assert at.number_input(key="verify_threads").value == 2


def test_grown_as_new_choice_survives_a_view_switch() -> None:
    at, _ = grown_head_app()                                 # the head grows: its tensors have new rows
    view(at, "Fine-tune")
    as_new = groups(at).set_index("name")["tensors"].to_dict()
    at.checkbox(key="ft_grown_as_new").uncheck().run()
    at_base = groups(at).set_index("name")["tensors"].to_dict()
    assert at_base["pretrained"] > as_new["pretrained"]      # the grown head moved to the base rate
    view(view(at, "Download"), "Fine-tune")
    assert at.checkbox(key="ft_grown_as_new").value is False
    assert groups(at).set_index("name")["tensors"].to_dict() == at_base


def test_a_typed_server_path_survives_a_view_switch(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(OUTPUT_ROOTS_ENV, str(tmp_path))
    (tmp_path / "runs").mkdir()
    at = view(new_app(), "Download")
    at.radio(key="out_where").set_value("Write to a server folder").run()
    assert at.text_input(key="out_server_path").value == "merged.safetensors"
    at.radio(key="out_format").set_value(".pt").run()
    assert at.text_input(key="out_server_path").value == "merged.pt"       # the default follows the format
    at.text_input(key="out_server_path").input("runs/kept.pt").run()
    view(view(at, "Fine-tune"), "Download")
    assert at.text_input(key="out_server_path").value == "runs/kept.pt"
    at.button(key="build_merged").click().run()
    no_failure(at)
    assert (tmp_path / "runs" / "kept.pt").is_file()
