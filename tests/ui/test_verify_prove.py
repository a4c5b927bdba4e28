"""Verify's "Prove" through AppTest: an HF GPT-2 folder on the server (weights + config.json)
against nanoGPT's model definition, proved, or the first diverging module named as text."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.models.proof_cases import saved
from tests.zoo import hf

from .conftest import new_app, plain
from .test_app import no_failure, view

NANOGPT = "tests.zoo.gpt:nanogpt"


@pytest.fixture
def gpt2_on_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CKPTLAB_ROOTS", str(tmp_path))
    monkeypatch.setenv("CKPTLAB_MODEL_ALLOW", NANOGPT)          # the operator lists the test model
    return saved(hf.gpt2(), tmp_path)


def _proved(path: Path, target_kwargs: dict) -> AppTest:
    at = new_app()
    at.sidebar.selectbox(key="auto").set_value("high").run()     # the catalogue's conversion applied
    at.sidebar.radio(key="source_mode").set_value("Server path").run()
    at.sidebar.text_input(key="source_path").input(str(path)).run()
    at.sidebar.radio(key="target_mode").set_value("Model definition").run()
    at.sidebar.text_input(key="target_spec").input(NANOGPT).run()
    at.sidebar.text_input(key="target_kwargs").input(json.dumps(target_kwargs)).run()
    view(at, "Verify")
    at.button(key="verify_prove").click().run()
    no_failure(at)
    failures = [e.value for e in at.error]  # the suggestions panel takes catalogue 'convert' rules too
    assert not failures, failures
    return at


def test_prove_says_proved_for_the_catalogue_job(gpt2_on_server: Path) -> None:
    at = _proved(gpt2_on_server, {})
    assert any(s.value.startswith("Proved: outputs equal (max |diff| ") for s in at.success)


def test_prove_names_the_first_diverging_module_as_a_code_span(gpt2_on_server: Path) -> None:
    # the same weights in a nanoGPT whose LayerNorms use another eps: ln_1 is the first to differ
    at = _proved(gpt2_on_server, {"layer_norm_epsilon": 0.5})
    warning = next(w.value for w in at.warning if w.value.startswith("Not proved"))
    assert "`transformer.h.0.ln_1`" in warning
    assert any("transformer.h.0.ln_1" in plain(c.value) and "\\." in c.value for c in at.caption)
