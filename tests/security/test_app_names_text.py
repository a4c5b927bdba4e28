"""Names from files are text in every view: key names, file names and recipe values holding
bare URLs, ``www.`` hosts, e-mail addresses, markdown links and images never become a link
or an image. Escaping punctuation is not enough: Streamlit's markdown (remark-gfm) finds
bare URLs in the text after escapes are resolved, so the bodies are checked for what GFM
would autolink as well as for live markdown syntax."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from sample_ckpts.models import ConvNet
from tests.ui.conftest import new_app
from tests.ui.test_app import no_failure, pick_pair, recipe_widget, upload, view
from tests.ui.test_layout_and_safety import live, rendered_markdown

VIEWS = ("Alignment", "Shape fixes", "Values & charts", "Verify", "Fine-tune", "Download")
BARE = ("a.http://evil.example/bare.weight", "b.www.evil.example.weight", "c.user@evil.example.weight",
        "d.[click here to re-verify](http://evil.example/re).weight", "e.![px](http://evil.example/t.png).weight",
        "f.HTTPS://EVIL.example/up.weight")
# GFM autolink literals as remark-gfm finds them in text (after escapes are resolved)
AUTOLINK = re.compile(r"(?i)(https?://[-\w]+\.[-\w]|(?<![\w])www\.[-\w]+\.|[-.\w+]+@[-\w]+\.[-\w])")


def resolved(body: str) -> str:
    """The text markdown shows outside code spans: backslash escapes resolved (word joiners
    kept: they are what stops an autolink)."""
    outside = re.sub(r"(?<!\\)(`+)(?!`).*?(?<!`)\1(?!`)", "", body)
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", outside)


def assert_inert(bodies: list[str], where: str) -> None:
    for body in bodies:
        for token in ("](", "<img", "<a "):
            assert not live(body, token), (where, token, body)
        assert not AUTOLINK.search(resolved(body)), (where, AUTOLINK.search(resolved(body)).group(0), body)


def everything(at: AppTest) -> list[str]:
    """Every markdown body of the page: texts, alerts, metric labels, widget help tooltips."""
    bodies = rendered_markdown(at) + [i.value for i in at.info] + [w.value for w in at.sidebar.warning]
    bodies += [w.help for w in list(at.checkbox) + list(at.button) if getattr(w, "help", None)]
    return bodies


def hostile_files(tmp_path: Path) -> tuple[Path, Path]:
    source = {k: torch.zeros(2, 3) for k in BARE} | {"net.http://evil.example/also.weight": torch.zeros(4)}
    source["note www.evil.example/ [x](http://evil.example/n)"] = "an extra entry"
    target = {"model." + k: torch.zeros(2, 3) for k in BARE[:4]} | {"x.weight": torch.zeros(4, 3)}
    torch.save(source, tmp_path / "hostile.pt")
    torch.save(target, tmp_path / "target.pt")
    return tmp_path / "hostile.pt", tmp_path / "target.pt"


def test_hostile_key_names_file_names_and_recipe_values_render_inert_in_every_view(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CKPTLAB_ROOTS", str(tmp_path))
    source, target = hostile_files(tmp_path)
    at = new_app()
    for role, path in (("source", source), ("target", target)):
        at.sidebar.radio(key=f"{role}_mode").set_value("Server path").run()
        at.sidebar.text_input(key=f"{role}_path").input(str(path)).run()
    no_failure(at)
    seen = []
    for name in VIEWS:
        view(at, name)
        seen += everything(at)
        assert_inert(everything(at), name)
    # a recipe naming a URL and a missing target: its value goes through the warnings and errors
    recipe = {"rules": [{"strip_prefix": "www.evil.example/"}], "adapt": {"http://evil.example/t.weight": {"op": "pad"}}}
    view(at, "Alignment")
    recipe_widget(at).set_value(("r.yaml", json.dumps(recipe).encode(), "application/x-yaml")).run()
    no_failure(at)
    bad = "rules:\n- replace: {pattern: '(', with: 'http://evil.example/x user@evil.example'}\n"
    recipe_widget(at).set_value(("www.evil.example.yaml", bad.encode(), "application/x-yaml")).run()
    assert at.error, "the broken recipe is reported"
    assert_inert(everything(at), "recipe")
    # an upload named like a URL that is not a checkpoint: the error banner names it
    upload(at, "source", "www.evil.example@user.pt", b"not a checkpoint at all")
    assert at.sidebar.error, "the bad upload is reported"
    seen += everything(at) + [e.value for e in at.sidebar.error]
    assert_inert(seen, "error banner")
    reached = [b for b in seen if "evil" in resolved(b)]       # outside code spans: escaping alone is tested
    assert len(reached) >= 3, reached


def test_the_function_check_caption_shows_fixes_naming_hostile_keys_as_text(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The Verify caption lists the fixes that fit the source to its own model: here a
    prefix that is a markdown link with a bare URL inside."""
    monkeypatch.setenv("CKPTLAB_ROOTS", str(tmp_path))
    prefix = "[click_here_to_re-verify](http://evil.example/re)."
    torch.save({prefix + k: v for k, v in ConvNet(in_chans=3).state_dict().items()}, tmp_path / "prefixed.pt")
    at = pick_pair(new_app(), 2)
    at.sidebar.selectbox(key="auto").set_value("high").run()
    at.sidebar.radio(key="source_mode").set_value("Server path").run()
    at.sidebar.text_input(key="source_path").input(str(tmp_path / "prefixed.pt")).run()
    at.sidebar.radio(key="target_mode").set_value("Model definition").run()
    at.sidebar.text_input(key="target_kwargs").input('{"in_chans": 3}').run()
    view(at, "Verify")
    next(t for t in at.text_input if (t.key or "").startswith("verify_src_spec_")).input(
        "sample_ckpts.models:ConvNet").run()
    next(t for t in at.text_input if (t.key or "").startswith("verify_src_kwargs_")).input('{"in_chans": 3}').run()
    at.button(key="verify_function").click().run()
    at.button(key="verify_load").click().run()
    no_failure(at)
    caption = next(c.value for c in at.caption if c.value.startswith("Compared:"))
    assert "evil" in resolved(caption) and "re-verify" in resolved(caption), caption   # the fix is named...
    assert_inert(everything(at), "Verify")                                # ...as text
