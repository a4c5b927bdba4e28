"""App state (issue 16, item 8): every view of the registry renders; session keys are
declared once by the module that owns them and only ``ui/state.py`` (with ``kept`` and
``lifecycle``) touches ``st.session_state``; a new pair runs each view's reset hook; sticky
widgets keep their value through Streamlit's own ``persist_state``."""
from __future__ import annotations

from pathlib import Path

import pytest

from ckptlab.ui import state, views

from .conftest import ROOT, new_app
from .test_app import no_failure, pick_pair, view

UI = ROOT / "ckptlab" / "ui"
OWNERS = {"state.py", "kept.py", "lifecycle.py"}     # may touch st.session_state itself


@pytest.mark.parametrize("name", list(views.VIEWS))
def test_every_view_of_the_registry_renders(name: str) -> None:
    at = new_app()
    for index in (0, 2):                                 # an empty load, a shape mismatch
        pick_pair(at, index)
        view(at, name)
        no_failure(at)
        assert at.segmented_control(key=views.VIEW).value == name


def test_only_the_state_modules_touch_session_state() -> None:
    raw = {}
    for path in sorted(UI.rglob("*.py")):
        if path.name in OWNERS:
            continue
        hits = [n for n, line in enumerate(path.read_text().splitlines(), 1) if "session_state" in line]
        if hits:
            raw[str(path.relative_to(ROOT))] = hits
    assert raw == {}


def test_session_keys_are_declared_once_with_their_owner() -> None:
    import importlib

    for path in UI.rglob("*.py"):
        if path.stem in ("serve", "app_script"):   # entry points: importing one starts the server's routes
            continue
        module = "ckptlab." + ".".join(path.relative_to(ROOT / "ckptlab").with_suffix("").parts)
        importlib.import_module(module.removesuffix(".__init__"))
    declared = state.declared()
    assert len(declared) >= 15
    assert all(owner.startswith("ckptlab.ui.") for owner in declared.values()), declared
    assert {"recipe", "_built", "module_filter", "_source_upload_file", "_upload_tickets"} <= set(declared)
    with pytest.raises(ValueError, match="declared twice"):
        state.Slot("recipe")                              # owned by ckptlab.ui.state, not by this test


def test_every_view_module_has_show_and_resets_are_hooks() -> None:
    for name, module in views.VIEWS.items():
        assert callable(module.show), name
    hooks = [name for name, module in views.VIEWS.items() if callable(getattr(module, "reset", None))]
    assert hooks == ["Alignment", "Download"]


def test_a_new_pair_runs_the_views_reset_hooks(downloads) -> None:
    at = view(pick_pair(new_app(), 6), "Download")      # DDP: builds at once
    at.button(key="build_merged").click().run()
    assert at.session_state["_built"] is not None
    built = Path(at.session_state["_built"]["path"])
    assert built.is_file()
    at.session_state["module_filter"] = ("target", "conv1")
    pick_pair(at, 7)                                     # another pair
    assert at.session_state["_built"] is None and not built.exists()
    assert at.session_state["module_filter"] is None


def test_a_sticky_widget_survives_other_views_without_a_new_key() -> None:
    at = pick_pair(new_app(), 1)
    at.pills(key="status_filter").set_value(["missing"]).run()
    at.text_input(key="key_search").input("attn").run()
    for other in ("Download", "Values & charts", "Alignment"):
        view(at, other)
    assert at.pills(key="status_filter").value == ["missing"]
    assert at.text_input(key="key_search").value == "attn"
