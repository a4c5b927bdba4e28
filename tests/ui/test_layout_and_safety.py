"""The page's new pieces through AppTest and as pure functions: names from files shown as
inert text, warnings, natural container order, plurals, parameter counts, the recipe
uploader after a reset, the filter kept across views, output paths and server folders."""
from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

import ckptlab
from ckptlab.errors import PathNotAllowedError
from ckptlab.io.allowed_roots import OUTPUT_ROOTS_ENV, check_output_path, output_roots
from ckptlab.ui import files, text
from ckptlab.ui.inputs import natural_key, parameter_count
from ckptlab.ui.samples import PAIRS

from .conftest import SAMPLES, new_app, plain
from .test_app import (
    counts,
    errors,
    kept_key,
    no_failure,
    pick_pair,
    recipe_uploader,
    recipe_widget,
    table,
    upload,
    view,
)

LINK = "[click me](http://evil.example/steal)"
IMAGE = "![pixel](http://evil.example/track.png)"
HTML = "<img src=http://evil.example/x.png>"
HOSTILE_KEYS = (f"a.{LINK}.weight", f"b.{IMAGE}.weight", f"c.{HTML}.weight", "d.www.evil.example.weight",
                "e.:red[loud].weight", "f.$x^2$.weight", "g.`[tick](http://evil.example/t)`.weight")


def hostile_pair(tmp_path: Path) -> tuple[Path, Path]:
    """A source whose key names (and a non-tensor entry) are markdown links, images, HTML,
    Streamlit colour directives and maths; a target that needs them renamed."""
    source = {k: torch.zeros(2, 3) for k in HOSTILE_KEYS}
    source[f"meta {LINK}"] = 3                                  # a non-tensor entry: "also in the file"
    target = {"model." + k: torch.zeros(2, 3) for k in HOSTILE_KEYS[:3]} | {"x.weight": torch.zeros(4, 3)}
    torch.save(source, tmp_path / "hostile.pt")
    torch.save(target, tmp_path / "target.pt")
    return tmp_path / "hostile.pt", tmp_path / "target.pt"


def live(body: str, token: str) -> bool:
    """Whether ``token`` occurs with its first character unescaped and outside a code span
    (markdown would act on it there; a code span shows its text as written)."""
    import re

    outside = re.sub(r"(?<!\\)(`+)(?!`).*?(?<!`)\1(?!`)", "", body)
    return re.search(r"(?<!\\)" + re.escape(token), outside) is not None


def rendered_markdown(at: AppTest) -> list[str]:
    """Every markdown body the page sends (markdown, captions, alerts, metric labels)."""
    bodies = [m.value for m in at.markdown] + [c.value for c in at.caption]
    bodies += [e.value for e in at.error] + [w.value for w in at.warning] + [s.value for s in at.success]
    bodies += [m.label for m in at.metric]
    for part in (at.sidebar,):
        bodies += [m.value for m in part.markdown] + [c.value for c in part.caption] + [e.value for e in part.error]
    return bodies


def test_key_names_with_markdown_links_images_and_html_are_shown_as_text(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CKPTLAB_ROOTS", str(tmp_path))
    source, target = hostile_pair(tmp_path)
    at = new_app()
    for role, path in (("source", source), ("target", target)):
        at.sidebar.radio(key=f"{role}_mode").set_value("Server path").run()
        at.sidebar.text_input(key=f"{role}_path").input(str(path)).run()
    no_failure(at)
    assert set(table(at)["source"]) - {""} == set(HOSTILE_KEYS)           # the names, exactly, in the grid
    accept_all = [s for s in ckptlab.align(source, target, auto="none").suggestions]
    assert accept_all, "the pair needs a suggestion, so names go through its markdown line"
    for name in ("Alignment", "Shape fixes", "Values & charts", "Verify", "Fine-tune", "Download"):
        view(at, name)
        for body in rendered_markdown(at):
            # a live link/image needs an unescaped "](" or "<"; a directive an unescaped ":red["
            for token in ("](http", "<img", ":red[loud]", "$x^2$", "www.evil", "http://"):
                assert not live(body, token), (name, body)
    shown = [t.value for t in at.sidebar.text]                            # plain text: the name as written
    assert any(f"meta {LINK}" in t for t in shown)
    everything = " ".join(plain(b) for b in rendered_markdown(at))
    assert "model." in everything                                         # the escaped text still reads right


def test_markdown_escape_reads_back_exactly_and_links_nothing() -> None:
    for name in (*HOSTILE_KEYS, "back\\slash `tick` *star* _under_ #hash ~tilde~ |pipe|"):
        escaped = text.md(name)
        assert plain(escaped) == name
        assert not any(live(escaped, t) for t in ("](", "<img", "http://", "www.", ":red[", "$x"))
    assert text.md("two\nlines\tand tabs") == "two lines and tabs"


def test_errors_name_the_file_once_and_never_the_session_folder() -> None:
    folder = "/tmp/ckptlab-server-1-x/session-abc"
    message = text.error_text(f"{folder}/source/evil.pt: not a checkpoint (bad magic)", "evil.pt", hide=[folder])
    assert message == "evil.pt: not a checkpoint (bad magic)"
    assert text.error_text("bad.yaml: rule 1 broken", "bad.yaml") == "bad.yaml: rule 1 broken"
    assert text.error_text("truncated", "cut.pt") == "cut.pt: truncated"
    assert text.error_text("/srv/ckpt/a.pt: truncated", "ckpt/a.pt", path="/srv/ckpt/a.pt") == "/srv/ckpt/a.pt: truncated"


def test_plurals_and_explains_one_key() -> None:
    from ckptlab.ui.suggestions import explains

    assert explains(1) == "explains 1 key" and explains(2) == "explains 2 keys" and explains(0) == "explains 0 keys"
    at = pick_pair(new_app(), 2)                                         # RGB -> RGBA: one key to pad
    assert any("explains 1 key)" in m.value for m in at.markdown)
    assert not any("explains 1 keys" in m.value for m in at.markdown)


def test_container_options_are_sorted_naturally() -> None:
    names = ["optimizer.state.8", "optimizer.state.4", "", "optimizer.state.0", "optimizer.state.10", "net"]
    assert sorted(names, key=natural_key) == ["", "net", "optimizer.state.0", "optimizer.state.4",
                                              "optimizer.state.8", "optimizer.state.10"]
    at = new_app()                                                       # attention_net_ckpt.pt: net + optimizer
    picker = next(s for s in at.sidebar.selectbox if s.key and s.key.startswith("source_container_"))
    assert list(picker.options) == sorted(picker.options, key=lambda o: natural_key(o.split(":")[0]))


def test_parameter_count_leaves_buffers_out() -> None:
    from sample_ckpts.models import ConvNet

    model = ConvNet(in_chans=3)
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for b in model.buffers())
    assert buffers > 0
    from_file = parameter_count(ckptlab.open(SAMPLES / "convnet_rgb.pt"))
    from_model = parameter_count(ckptlab.io.model_target.model_target("sample_ckpts.models:ConvNet", {"in_chans": 3}))
    assert from_file == (params, buffers) and from_model == (params, buffers)
    at = pick_pair(new_app(), 2)
    assert any(f"{params:,} parameters (+{buffers:,} buffer values)" in t.value for t in at.sidebar.text)


def test_unmatched_adapt_entries_are_reported() -> None:
    recipe = "adapt:\n  conv1.weight: {op: pad, dim: 1}\n  conv9.weight: {op: pad, dim: 1}\n"
    at = pick_pair(new_app(), 2)
    recipe_widget(at).set_value(("r.yaml", recipe.encode(), "application/x-yaml")).run()
    no_failure(at)
    assert counts(at)["adapted"] == 1
    warned = [plain(w.value) for w in at.warning]
    assert any("match nothing" in w and "conv9.weight" in w and "conv1.weight" not in w for w in warned)


def test_reset_recipe_clears_the_recipe_uploader() -> None:
    at = pick_pair(new_app(), 5)                                         # warm start
    first = recipe_uploader(at)
    text_ = "rules:\n- replace: {pattern: '^conv1\\.', with: 'backbone_conv.'}\n"
    at.file_uploader(key=first).set_value(("recipe.yaml", text_.encode(), "application/x-yaml")).run()
    assert counts(at)["renamed"] == 2
    at.button(key="reset_recipe").click().run()
    no_failure(at)
    assert counts(at)["renamed"] == 0
    second = recipe_uploader(at)
    assert second != first and not at.file_uploader(key=second).value     # a new, empty uploader
    assert not [u for u in at.get("file_uploader") if u.proto.id.endswith(first)]


def test_filter_and_search_survive_a_view_switch_and_an_input_switch() -> None:
    at = pick_pair(new_app(), 1)                                         # attention swap
    at.pills(key=kept_key(at, "status_filter")).set_value(["missing"]).run()
    at.text_input(key=kept_key(at, "key_search")).input("attn").run()
    shown = len(table(at))
    view(at, "Download")
    view(at, "Alignment")
    assert at.pills(key=kept_key(at, "status_filter")).value == ["missing"]
    assert at.text_input(key=kept_key(at, "key_search")).value == "attn" and len(table(at)) == shown
    upload(at, "source", "self.pt", Path(PAIRS[1].source.path).read_bytes())   # the table is gone, then back
    assert at.pills(key=kept_key(at, "status_filter")).value == ["missing"]
    assert set(s[0] for s in table(at)["status"]) == {"missing"}


def test_every_view_draws_without_an_error_on_every_demo_pair() -> None:
    at = new_app()
    for index in range(len(PAIRS)):
        pick_pair(at, index)
        for name in ("Alignment", "Shape fixes", "Values & charts", "Verify", "Fine-tune", "Download"):
            view(at, name)
            assert not [e for e in errors(at) if not e.startswith(("**Nearly nothing", "Merged checkpoint refused"))], \
                (PAIRS[index].title, name, errors(at))


def test_output_paths_stay_under_the_output_roots(tmp_path: Path) -> None:
    root, outside = tmp_path / "out", tmp_path / "elsewhere"
    root.mkdir(), outside.mkdir()
    (root / "taken.pt").write_bytes(b"x")
    roots = output_roots({OUTPUT_ROOTS_ENV: str(root)})
    assert roots == [root.resolve()] and output_roots({}) == []
    assert check_output_path("merged.safetensors", roots) == root.resolve() / "merged.safetensors"
    for bad in (str(outside / "m.pt"), "../elsewhere/m.pt", "taken.pt", "notes.txt", ""):
        with pytest.raises(PathNotAllowedError):
            check_output_path(bad, roots)
    (root / "link").symlink_to(outside)
    with pytest.raises(PathNotAllowedError, match="outside the output folders"):
        check_output_path("link/m.pt", roots)
    with pytest.raises(PathNotAllowedError, match="off"):
        check_output_path("m.pt", [])


def test_merged_file_written_to_a_server_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OUTPUT_ROOTS_ENV, str(tmp_path))
    at = view(pick_pair(new_app(), 3), "Download")                       # head story: mismatch blocks
    view(at, "Alignment")
    head = next(s.rule for s in ckptlab.align(PAIRS[3].source.path, PAIRS[3].target.path, auto="none").suggestions
                if "adapt" in s.rule)
    from .test_app import accept

    accept(at, head)
    view(at, "Download")
    at.radio(key="out_where").set_value("Write to a server folder").run()
    at.text_input(key="out_server_path").input("grown.safetensors").run()
    at.button(key="build_merged").click().run()
    no_failure(at)
    written = tmp_path / "grown.safetensors"
    assert written.is_file() and any(str(written) in c.value for c in at.code)
    import safetensors.torch

    merged = safetensors.torch.load_file(written)
    assert sorted(merged) == sorted(ckptlab.open(PAIRS[3].target.path).keys())
    at.button(key="build_merged").click().run()                          # never overwritten
    assert any("exists already" in e for e in errors(at))


def test_stale_server_folders_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    dead = tmp_path / f"{files.SERVER_PREFIX}1-dead"
    dead.mkdir()
    (dead / files.LOCK_NAME).write_text("")
    (dead / "session-x").mkdir()
    live = tmp_path / f"{files.SERVER_PREFIX}2-live"
    live.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl,sys,time; h=open(sys.argv[1],'a+'); fcntl.flock(h, fcntl.LOCK_EX); print('locked', flush=True); "
        "time.sleep(60)"), str(live / files.LOCK_NAME)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"              # another running server holds it
        removed = files.sweep_stale(tmp_path)
        assert removed == [dead] and not dead.exists() and live.is_dir()
    finally:
        holder.kill()
        holder.wait()
    assert files.sweep_stale(tmp_path) == [live]                         # its server is gone now


def test_a_dropped_session_removes_its_folder_and_links() -> None:
    folder = files.SessionFolder()
    built = folder.path / "merged.pt"
    built.write_bytes(b"x" * 10)
    url = files.serve(built, "merged.pt", owner=folder.path)
    token = url.rsplit("/", 1)[-1]
    assert files.lookup(token).path == built and folder.path.parent == files.server_dir()
    with open(files.server_dir() / files.LOCK_NAME, "a+") as other:      # the server's folder is held
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    path = folder.path
    del folder
    import gc

    gc.collect()
    assert not path.exists() and files.lookup(token) is None
    assert files.lookup("not-a-token") is None
