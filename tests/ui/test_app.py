"""The web app through Streamlit's AppTest: demo on first open, uploads, suggestions,
shape fixes, downloads, hostile files and paths, sessions kept apart."""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import pytest
import safetensors.torch
import torch
from streamlit.testing.v1 import AppTest

import ckptlab
from ckptlab.recipe import edits as editing
from ckptlab.recipe.model import Recipe
from ckptlab.ui.samples import PAIRS

from .conftest import SAMPLES, download_bytes, new_app, plain

PT = "application/octet-stream"


def table(at: AppTest):
    return at.dataframe[0].value


def counts(at: AppTest) -> dict[str, int]:
    return {m.label.split(" ", 1)[1]: int(m.value.replace(",", "")) for m in at.metric}


def no_failure(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def pick_pair(at: AppTest, index: int) -> AppTest:
    at.sidebar.selectbox(key="pair").set_value(PAIRS[index].title).run()
    no_failure(at)
    return at


def upload(at: AppTest, role: str, name: str, data: bytes) -> AppTest:
    at.sidebar.radio(key=f"{role}_mode").set_value("Upload").run()
    at.sidebar.file_uploader(key=f"{role}_upload").set_value((name, data, PT)).run()
    no_failure(at)
    return at


def view(at: AppTest, name: str) -> AppTest:
    """Open one of the main area's views (Alignment, Shape fixes, Values & charts, ...)."""
    at.segmented_control(key=kept_key(at, "view")).set_value(name).run()
    no_failure(at)
    return at


def kept_key(at: AppTest, base: str) -> str:
    """The key of a ``ckptlab.ui.kept`` widget (Streamlit keeps its state: the key stays)."""
    return base


def editor(at: AppTest, name: str) -> AppTest:
    """Pick one of the Alignment view's editors (Rules, Mappings, Conversions, Recipe)."""
    at.segmented_control(key=kept_key(at, "editor_part")).set_value(name).run()
    no_failure(at)
    return at


def errors(at: AppTest, where=None) -> list[str]:
    return [plain(e.value) for e in (where or at).error]


def accept(at: AppTest, fragment: dict) -> AppTest:
    at.button(key=f"accept_{editing.fragment_id(fragment)}").click().run()
    no_failure(at)
    return at


def test_first_open_shows_the_demo_pair(app: AppTest) -> None:
    pair = PAIRS[0]
    expected = ckptlab.align(pair.source.path, pair.target.path, Recipe(), auto="none")
    frame = table(app)
    assert len(frame) == len(expected.rows)
    assert set(frame["target"]) - {""} == set(ckptlab.open(pair.target.path).keys())
    assert counts(app) == {k: v for k, v in expected.summary.items()}
    assert any("Nearly nothing would load" in e.value for e in app.error)        # the loud warning
    assert any("Demo pair" in c.value for c in app.caption)


def test_uploading_both_files_gives_the_expected_counts() -> None:
    at = new_app()
    upload(at, "source", "convnet_rgb.pt", (SAMPLES / "convnet_rgb.pt").read_bytes())
    upload(at, "target", "convnet_rgba.pt", (SAMPLES / "convnet_rgba.pt").read_bytes())
    expected = ckptlab.align(str(SAMPLES / "convnet_rgb.pt"), str(SAMPLES / "convnet_rgba.pt"), auto="none")
    assert counts(at) == expected.summary
    assert counts(at)["mismatch"] == 1 and counts(at)["exact"] == len(expected.rows) - 1
    frame = table(at)
    assert list(frame.loc[frame["target"] == "conv1.weight", "status"].item()) == ["mismatch"]   # a coloured label
    # 15 of 16 keys load: a warning beside the fed count, never the empty-load alarm of story 5
    assert not any("Nearly nothing would load" in e.value for e in at.error)
    fed = len(expected.fed)
    assert any(f"{fed} of {len(expected.target)} target keys are fed" in i.value for i in at.info)


def test_accepting_the_prefix_suggestion_renames_every_attention_map_row(app: AppTest) -> None:
    first = ckptlab.align(PAIRS[0].source.path, PAIRS[0].target.path, Recipe(), auto="none")
    container = [s.rule for s in first.suggestions if "container" in s.rule and not s.applied]
    for fragment in container:              # a reader that picks another container first
        accept(app, fragment)
    accept(app, {"add_prefix": "attention_map."})
    frame = table(app)
    wrapped = frame[frame["target"].str.startswith("attention_map.")]
    assert len(wrapped) == len(torch.load(PAIRS[0].source.path, weights_only=True)["net"])
    assert all(list(s) == ["renamed"] for s in wrapped["status"])
    assert not any("Nearly nothing would load" in e.value for e in app.error)
    editor(app, "Recipe")
    assert any("add_prefix: attention_map." in c.value for c in app.code)     # the recipe YAML


def test_shape_fix_then_download_loads_with_torch(downloads: dict[str, bytes]) -> None:
    at = view(pick_pair(new_app(), 2), "Download")            # RGB -> RGBA
    assert any("refused" in e.value for e in at.error)         # mismatch blocks the merge
    view(at, "Shape fixes")
    at.selectbox(key="fix_op_conv1.weight").set_value("pad")
    at.selectbox(key="fix_dim_conv1.weight").set_value(1)
    at.selectbox(key="fix_fill_conv1.weight").set_value("zeros").run()
    at.button(key="fix_apply_conv1.weight").click().run()
    no_failure(at)
    assert counts(at)["adapted"] == 1 and counts(at)["mismatch"] == 0
    view(at, "Download")
    source = torch.load(SAMPLES / "convnet_rgb.pt", weights_only=True)
    target_keys = list(torch.load(SAMPLES / "convnet_rgba.pt", weights_only=True))
    for suffix in (".pt", ".safetensors"):
        at.radio(key="out_format").set_value(suffix).run()
        at.button(key="build_merged").click().run()
        no_failure(at)
        assert at.get("progress")[-1].proto.value == 100
        data = download_bytes(at, "download_merged_button", downloads)
        if suffix == ".pt":
            merged = torch.load(io.BytesIO(data), weights_only=True)
        else:
            merged = safetensors.torch.load(data)
        assert sorted(merged) == sorted(target_keys)
        for key, value in source.items():
            if key == "conv1.weight":
                assert torch.equal(merged[key][:, :3], value) and not merged[key][:, 3].any()
            else:
                assert torch.equal(merged[key], value), key


def test_report_and_recipe_downloads(downloads: dict[str, bytes]) -> None:
    at = view(pick_pair(new_app(), 5), "Download")            # warm start: rows missing/unused
    report = download_bytes(at, "download_report_json", downloads).decode()
    import json

    data = json.loads(report)
    expected = ckptlab.align(PAIRS[5].source.path, PAIRS[5].target.path, Recipe(), auto="none")
    assert {r["target"] for r in data["rows"]} == {r.target for r in expected.rows if r.target}
    recipe_text = download_bytes(at, "download_recipe", downloads).decode()
    assert Recipe.from_text(recipe_text) == expected.effective_recipe


class Hostile:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", ["pickle", "torch-zip"])
def test_hostile_pickle_upload_is_refused_and_the_page_keeps_working(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    if kind == "pickle":
        pickle.dump({"weight": Hostile(marker)}, buffer)
    else:
        torch.save({"weight": torch.zeros(2), "evil": Hostile(marker)}, buffer)
    at = upload(new_app(), "source", "evil.pt", buffer.getvalue())
    assert at.sidebar.error, "the error is shown where the file was dropped"
    message = plain(at.sidebar.error[0].value)
    assert "evil.pt" in message and "\n" not in message
    assert message.count("evil.pt") == 1 and "ckptlab-s" not in message      # no server folder shown
    assert not marker.exists()
    assert not at.dataframe                      # no alignment without a source...
    at.sidebar.radio(key="source_mode").set_value("Sample").run()
    no_failure(at)                               # ...and the page works again at once
    assert len(table(at)) > 0 and not marker.exists()


def test_not_a_checkpoint_and_truncated_uploads_show_one_line(tmp_path: Path) -> None:
    good = (SAMPLES / "convnet_rgb.pt").read_bytes()
    for name, data in (("random.pt", os.urandom(4096)), ("cut.pt", good[: len(good) // 2]), ("empty.pt", b"")):
        at = upload(new_app(), "target", name, data)
        message = plain(at.sidebar.error[0].value)
        assert at.sidebar.error and name in message and message.count(name) == 1
        assert "Traceback" not in message and "ckptlab-s" not in message and "/tmp" not in message


@pytest.mark.parametrize("text", ["/etc/passwd", "../../etc/passwd", "sample_ckpts/../app.py"])
def test_server_path_outside_the_roots_is_refused(text: str) -> None:
    at = new_app()
    at.sidebar.radio(key="source_mode").set_value("Server path").run()
    at.sidebar.text_input(key="source_path").input(text).run()
    no_failure(at)
    assert errors(at, at.sidebar) == [f"{text}: not an allowed file (a checkpoint under the allowed folders above)"]
    assert not at.dataframe


def test_server_path_inside_a_root_opens() -> None:
    at = new_app()
    at.sidebar.radio(key="source_mode").set_value("Server path").run()
    at.sidebar.text_input(key="source_path").input(str(SAMPLES / "convnet_rgb_ddp.pt")).run()
    no_failure(at)
    assert not at.sidebar.error
    assert set(table(at)["source"]) - {""} == set(ckptlab.open(SAMPLES / "convnet_rgb_ddp.pt").keys())


def test_target_from_a_model_definition_and_code_upload_is_off() -> None:
    at = pick_pair(new_app(), 2)
    at.sidebar.radio(key="target_mode").set_value("Model definition").run()
    no_failure(at)
    assert any("CKPTLAB_ALLOW_CODE=1" in c.value for c in at.sidebar.caption)
    assert not [u for u in at.sidebar.get("file_uploader") if u.proto.id.endswith("target_code")]
    assert counts(at)["mismatch"] == 1               # ConvNet(in_chans=4) from the sample's definition
    at.sidebar.text_input(key="target_kwargs").input('{"in_chans": 3}').run()
    assert counts(at)["exact"] == len(table(at)) and counts(at)["mismatch"] == 0
    at.sidebar.text_input(key="target_kwargs").input("{not json").run()
    no_failure(at)
    assert any("JSON" in e for e in errors(at, at.sidebar))


def test_verification_of_the_rgba_fix() -> None:
    at = view(pick_pair(new_app(), 2), "Shape fixes")
    at.button(key="fix_apply_conv1.weight").click().run()
    view(at, "Verify")
    at.button(key="verify_load").click().run()
    at.button(key="verify_function").click().run()
    at.number_input(key="verify_budget").set_value(1.0).run()
    at.button(key="verify_speed").click().run()
    no_failure(at)
    texts = [plain(s.value) for s in at.success]
    assert any("no missing, unexpected or mismatched" in t for t in texts)
    assert any(t.startswith("Function preservation: outputs bit for bit equal") for t in texts)
    speed = next(d.value for d in at.dataframe if "time ratio" in d.value.columns)
    assert list(speed["size"]) == [16, 32, 64]                # the default sizes around the 32x32 input
    assert (speed["source ms"] > 0).all() and (speed["target ms"] > 0).all()
    assert list(speed["target input"]) == [str((2, 4, s, s)) for s in (16, 32, 64)]


def test_function_check_uses_the_source_under_its_own_model_keys() -> None:
    """A DDP source ('module.' keys) does not load strictly into its own model: the check
    strips the prefix for the source model (a sure fix) and says so."""
    pair = next(i for i, p in enumerate(PAIRS) if p.title.startswith("DDP"))
    at = pick_pair(new_app(), pair)
    accept(at, {"strip_prefix": "module."})
    view(at, "Verify")
    at.button(key="verify_function").click().run()
    no_failure(at)
    assert not at.error, [e.value for e in at.error]
    assert any(s.value.startswith("Function preservation: outputs bit for bit equal") for s in at.success)
    assert any("strip_prefix 'module.'" in plain(c.value) for c in at.caption)


def test_function_check_refuses_a_source_model_that_does_not_fit() -> None:
    at = view(pick_pair(new_app(), 2), "Shape fixes")         # RGB -> RGBA
    at.button(key="fix_apply_conv1.weight").click().run()
    view(at, "Verify")
    at.text_input(key=f"verify_src_kwargs_{PAIRS[2].source.model}").input('{"in_chans": 3, "num_classes": 7}').run()
    at.button(key="verify_function").click().run()
    no_failure(at)
    assert any(e.startswith("the source checkpoint does not fit the source model") for e in errors(at))


def test_warm_start_report_lists_missing_and_unexpected_keys() -> None:
    at = pick_pair(new_app(), 5)                              # smallnet -> WarmStartNet
    accept(at, {"replace": {"pattern": "^conv1\\.", "with": "backbone_conv."}})
    view(at, "Verify")
    report = ckptlab.load_into(ckptlab.io.model_target.build_model(PAIRS[5].target.model), PAIRS[5].source.path,
                               recipe={"rules": [{"replace": {"pattern": "^conv1\\.", "with": "backbone_conv."}}]})
    text = next(m.value for m in at.markdown if m.value.startswith("**Warm-start report**"))
    missing = text.split("**Missing keys**")[1].split("**Unexpected keys**")[0]
    unexpected = text.split("**Unexpected keys**")[1]
    assert report.missing and report.unused
    assert all(f"`{k}`" in missing for k in report.missing) and f": {len(report.missing)}:" in missing
    assert all(f"`{k}`" in unexpected for k in report.unused) and f": {len(report.unused)}:" in unexpected


def recipe_uploader(at: AppTest) -> str:
    from ckptlab.ui import rules

    editor(at, "Recipe")
    return f"recipe_upload_{at.session_state[rules.UPLOAD_VERSION] if rules.UPLOAD_VERSION in at.session_state else 0}"


def recipe_widget(at: AppTest):
    key = recipe_uploader(at)          # first: it reruns the page (a list taken before would be stale)
    return at.file_uploader(key=key)


def test_two_sessions_never_share_files_and_replaced_uploads_are_deleted() -> None:
    one, two = new_app(), new_app()
    upload(one, "source", "a.pt", (SAMPLES / "smallnet.pt").read_bytes())
    first = Path(one.session_state["_source_upload_file"][1])
    assert first.exists()
    upload(two, "source", "a.pt", (SAMPLES / "convnet_rgb.pt").read_bytes())
    other = Path(two.session_state["_source_upload_file"][1])
    assert other.parent != first.parent and first.read_bytes() != other.read_bytes()
    one.sidebar.file_uploader(key="source_upload").set_value(
        ("b.pt", (SAMPLES / "classifier_10.pt").read_bytes(), PT)).run()
    replaced = Path(one.session_state["_source_upload_file"][1])
    assert replaced.exists() and not first.exists()
    assert set(table(one)["source"]) - {""} == set(ckptlab.open(SAMPLES / "classifier_10.pt").keys())


def test_recipe_upload_applies_and_a_bad_one_says_why() -> None:
    at = pick_pair(new_app(), 5)                              # warm start: conv1 -> backbone_conv
    text = "rules:\n- replace: {pattern: '^conv1\\.', with: 'backbone_conv.'}\n"
    recipe_widget(at).set_value(("recipe.yaml", text.encode(), "application/x-yaml")).run()
    no_failure(at)
    expected = ckptlab.align(PAIRS[5].source.path, PAIRS[5].target.path, Recipe.from_text(text), auto="none")
    assert counts(at) == expected.summary and counts(at)["renamed"] == 2
    assert any("backbone_conv." in c.value for c in at.code)
    recipe_widget(at).set_value(("bad.yaml", b"rules:\n- drop: '('\n", "text/yaml")).run()
    no_failure(at)
    assert any(e.startswith("bad.yaml: rule 1 (drop): bad regex") for e in errors(at))
    assert counts(at) == expected.summary                   # the last good recipe stays in force
    recipe_widget(at).set_value(("bad.json", b'{"rules": [}', "application/json")).run()
    no_failure(at)                                          # a .json file is read as JSON, and said so
    assert "bad.json: recipe: not valid JSON at line 1, column 12: Expecting value" in errors(at)


def test_status_filter_and_key_search() -> None:
    at = pick_pair(new_app(), 1)                              # attention swap
    expected = ckptlab.align(PAIRS[1].source.path, PAIRS[1].target.path, Recipe(), auto="none")
    at.pills(key="status_filter").set_value(["missing"]).run()
    frame = table(at)
    assert set(frame["target"]) == {r.target for r in expected.rows if r.status == "missing"}
    at.pills(key="status_filter").set_value(["exact", "missing", "unused"]).run()
    at.text_input(key="key_search").input("ATTN").run()       # case-insensitive, either side
    frame = table(at)
    keys = {r.target or r.source for r in expected.rows if "attn" in (r.target or "") + (r.source or "")}
    assert set(frame["target"].where(frame["target"] != "", frame["source"])) == keys


def test_finetune_plan_and_code_for_the_head_story() -> None:
    at = view(pick_pair(new_app(), 3), "Fine-tune")   # 10 -> 100 classes; the head stays new (mismatch)
    at.checkbox(key="ft_freeze_loaded").check().run()
    no_failure(at)
    groups = next(d.value for d in at.dataframe if "lr" in d.value.columns)
    head = torch.load(PAIRS[3].target.path, weights_only=True)
    assert list(groups["name"]) == ["new"] and groups["lr"].item() == pytest.approx(1e-3 * 10)
    assert groups["params"].item() == head["fc.weight"].numel() + head["fc.bias"].numel()
    assert any("param_groups" in c.value or "requires_grad" in c.value for c in at.code)


def test_container_choice_is_shown_and_can_be_changed() -> None:
    at = new_app()                                            # attention_net_ckpt.pt: 'net' and optimizer state
    ck = ckptlab.open(PAIRS[0].source.path)
    picker = next(s for s in at.sidebar.selectbox if s.key and s.key.startswith("source_container_"))
    assert picker.value == ck.container and len(picker.options) == len(ck.candidates)
    other = next(c.path for c in ck.candidates if c.path != ck.container)
    picker.set_value(other).run()
    no_failure(at)
    expected = ckptlab.align(ckptlab.open(PAIRS[0].source.path, container=other), PAIRS[0].target.path,
                             auto="none")
    assert set(table(at)["source"]) - {""} == {r.source for r in expected.rows if r.source}
    assert any(f"under '{other}'" in t.value for t in at.sidebar.text)


def test_model_file_upload_when_code_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CKPTLAB_ALLOW_CODE", "1")
    code = b"import torch\nclass Net(torch.nn.Module):\n    def __init__(self):\n" \
           b"        super().__init__()\n        self.fc = torch.nn.Linear(3, 2)\n"
    at = new_app()
    at.sidebar.radio(key="target_mode").set_value("Model definition").run()
    at.sidebar.text_input(key="target_code_callable").input("Net").run()
    at.sidebar.file_uploader(key="target_code").set_value(("net.py", code, "text/x-python")).run()
    no_failure(at)
    assert set(table(at)["target"]) - {""} == {"fc.weight", "fc.bias"}


def grown_head_app() -> tuple[AppTest, int]:
    """Story 3: the projector pair with the prefix and the suggested head pad accepted."""
    pair = next(i for i, p in enumerate(PAIRS) if p.source.file == "projector.pt")
    at = pick_pair(new_app(), pair)
    accept(at, {"strip_prefix": "classifier."})
    head = next(s.rule for s in ckptlab.align(PAIRS[pair].source.path, PAIRS[pair].target.path,
                                              {"rules": [{"strip_prefix": "classifier."}]}, auto="none").suggestions
                if "adapt" in s.rule)
    return accept(at, head), pair


def test_grown_head_trains_at_the_multiplier_and_the_code_agrees() -> None:
    at, pair = grown_head_app()
    assert counts(at)["adapted"] == 2
    view(at, "Fine-tune")
    at.text_input(key="ft_freeze").input(r"^backbone\.").run()
    at.text_input(key="ft_as_new").input(r"^fc\.").run()
    no_failure(at)
    groups = next(d.value for d in at.dataframe if "lr" in d.value.columns)
    target = torch.load(PAIRS[pair].target.path, weights_only=True)
    assert list(groups["name"]) == ["new"] and groups["lr"].item() == pytest.approx(1e-2)
    assert groups["params"].item() == target["fc.weight"].numel() + target["fc.bias"].numel()
    code = next(c.value for c in at.code if "def param_groups" in c.value)
    namespace: dict = {}
    exec(compile(code, "plan.py", "exec"), namespace)       # the shown code, run as the user would
    from sample_ckpts.models import Classifier

    model = Classifier(100)
    got = namespace["param_groups"](model)
    names = {id(p): n for n, p in model.named_parameters()}
    assert [(g["name"], g["lr"], sorted(names[id(p)] for p in g["params"])) for g in got] == \
           [("new", pytest.approx(1e-2), ["fc.bias", "fc.weight"])]
    assert not model.backbone[0].weight.requires_grad


def test_histogram_offers_the_changed_tensor_first() -> None:
    at = view(pick_pair(new_app(), 2), "Values & charts")     # RGB -> RGBA: conv1.weight mismatched
    assert at.selectbox(key=kept_key(at, "histogram_key")).value == "conv1.weight"
    view(at, "Shape fixes")
    at.button(key="fix_apply_conv1.weight").click().run()
    view(at, "Values & charts")
    assert at.selectbox(key=kept_key(at, "histogram_key")).options[0] == "conv1.weight"
