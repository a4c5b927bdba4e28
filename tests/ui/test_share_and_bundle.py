"""A lab state shared as a link (inputs, recipe, view through ``st.query_params``) reopens the
same table in a new session; the hand-over bundle holds the recipe, the report and a
script whose default paths are the visitor's file names, never the server's copy."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from ckptlab.recipe.model import Recipe
from ckptlab.ui import share
from ckptlab.ui.samples import PAIRS

from .conftest import APP, SAMPLES, download_bytes, new_app, plain
from .test_app import accept, counts, no_failure, pick_pair, table, upload, view


def shared_link(at: AppTest) -> str:
    """The link the Share popover shows."""
    return next(c.value for c in at.code if "?" in c.value and "pair=" in c.value)


def opened(link: str) -> AppTest:
    """A new session (another visitor) opening ``link``."""
    at = AppTest.from_file(str(APP), default_timeout=60)
    for name, value in parse_qsl(urlsplit(link).query):
        at.query_params[name] = value
    at.run()
    no_failure(at)
    return at


def current_view(at: AppTest) -> str:
    return at.segmented_control(key="view").value


def test_a_shared_link_reopens_inputs_recipe_and_view() -> None:
    at = pick_pair(new_app(), 0)                                 # the silent empty load
    accept(at, {"add_prefix": "attention_map."})
    at.sidebar.radio(key="target_mode").set_value("Server path").run()
    at.sidebar.text_input(key="target_path").input(str(SAMPLES / "attention_wrapper.pt")).run()
    view(at, "Shape fixes")
    link = shared_link(at)
    query = dict(parse_qsl(urlsplit(link).query))
    assert query["pair"] == "0" and query["source"] == "sample" and query["view"] == "Shape fixes"
    assert query["target"] == f"path:{SAMPLES / 'attention_wrapper.pt'}"
    assert share.decode_recipe(query["recipe"]) == Recipe.from_dict({"rules": [{"add_prefix": "attention_map."}]})
    other = opened(link)
    assert current_view(other) == "Shape fixes"
    assert other.sidebar.text_input(key="target_path").value == str(SAMPLES / "attention_wrapper.pt")
    assert counts(other) == counts(at)
    view(other, "Alignment")
    view(at, "Alignment")
    assert table(other).equals(table(at))
    assert not other.query_params or "recipe" not in other.query_params   # the query is used once


def test_an_upload_is_never_in_a_link_and_the_link_says_so() -> None:
    at = upload(new_app(), "source", "mine.pt", (SAMPLES / "convnet_rgb.pt").read_bytes())
    link = shared_link(at)
    assert "source=" not in link and "mine" not in link
    assert any("Not in the link: the source" in plain(w.value) for w in at.warning)


@pytest.mark.parametrize("packed, why", [
    ("@@not-base64@@", "cannot be read"),
    ("eJzLSM3JyVcozy_KSQEAGgQEXQ", "cannot be read"),              # deflated text, not a recipe's JSON
    ("A" * (share.MAX_RECIPE_CHARS + 1), "at most"),
], ids=["not-base64", "not-json", "too-long"])
def test_a_bad_recipe_in_a_link_is_one_line_and_the_page_works(packed: str, why: str) -> None:
    at = opened(f"?pair=2&source=sample&target=sample&recipe={packed}")
    assert any(why in plain(w.value) for w in at.warning), [w.value for w in at.warning]
    assert counts(at)["mismatch"] == 1                          # RGB -> RGBA opened, empty recipe


def test_a_link_recipe_bomb_is_refused_before_it_is_unpacked() -> None:
    import base64
    import zlib

    bomb = base64.urlsafe_b64encode(zlib.compress(b"[" * (share.MAX_RECIPE_JSON * 4), 9)).decode().rstrip("=")
    assert len(bomb) < share.MAX_RECIPE_CHARS
    with pytest.raises(Exception, match="once unpacked"):
        share.decode_recipe(bomb)


def test_the_bundle_holds_recipe_report_and_a_script_named_after_the_uploads(downloads: dict) -> None:
    at = upload(new_app(), "source", "my_rgb_net.pt", (SAMPLES / "convnet_rgb.pt").read_bytes())
    upload(at, "target", "my_rgba_net.pt", (SAMPLES / "convnet_rgba.pt").read_bytes())
    view(at, "Shape fixes")
    at.selectbox(key="fix_op_conv1.weight").set_value("pad")
    at.selectbox(key="fix_dim_conv1.weight").set_value(1)
    at.selectbox(key="fix_fill_conv1.weight").set_value("zeros").run()
    at.button(key="fix_apply_conv1.weight").click().run()
    view(at, "Download")
    data = download_bytes(at, "download_bundle", downloads)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        assert names == {"README.md", "recipe.yaml", "report.csv", "report.json", "remap.py"}
        recipe = Recipe.from_dict(yaml.safe_load(zf.read("recipe.yaml")))
        script = zf.read("remap.py").decode()
        readme = zf.read("README.md").decode()
        report = zf.read("report.csv").decode()
    assert "conv1.weight" in recipe.adapt and "conv1.weight" in report
    assert "SOURCE = 'my_rgb_net.pt'" in script and "TARGET = 'my_rgba_net.pt'" in script
    assert "session-" not in script and "ckptlab-server-" not in script      # never the server's copy
    assert "my_rgb_net.pt" in readme and "?pair=" not in readme              # uploads: no link to give
    snippet = download_bytes(at, "download_snippet", downloads).decode()
    assert "SOURCE = 'my_rgb_net.pt'" in snippet


def test_the_script_of_a_sample_pair_names_the_sample_files(downloads: dict) -> None:
    at = view(pick_pair(new_app(), 6), "Download")                 # DDP prefix
    snippet = download_bytes(at, "download_snippet", downloads).decode()
    source = Path(PAIRS[6].source.path).resolve().relative_to(Path.cwd().resolve())
    assert f"SOURCE = '{source.as_posix()}'" in snippet
