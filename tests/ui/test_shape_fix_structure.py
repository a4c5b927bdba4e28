"""Shape fixes know about structure: on a pair whose projections are stored transposed
(GPT-2's Conv1D beside nanoGPT's Linear), every mismatched row offers a transpose first and
no adapter preselected; a lossy adapter on such a row is named before Apply; applying the
conversion gives converted rows and a merged file whose tensors are the transposed source."""
from __future__ import annotations

from pathlib import Path

import pytest
import safetensors.torch
import torch
from streamlit.testing.v1 import AppTest

from ckptlab.vocab import LOSSY_ADAPT_OPS
from tests.zoo import gpt_pair

from .conftest import SAMPLES, download_bytes, new_app, plain
from .test_app import counts, no_failure, upload, view


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("transposed")
    torch.manual_seed(0)
    torch.save(gpt_pair.gpt2().state_dict(), folder / "gpt2_layout.pt")
    torch.save(gpt_pair.nanogpt().state_dict(), folder / "nanogpt_layout.pt")
    return folder / "gpt2_layout.pt", folder / "nanogpt_layout.pt"


def shape_fixes(pair: tuple[Path, Path]) -> AppTest:
    at = new_app()
    upload(at, "source", pair[0].name, pair[0].read_bytes())
    upload(at, "target", pair[1].name, pair[1].read_bytes())
    return view(at, "Shape fixes")


def fix_rows(at: AppTest) -> list[str]:
    return [s.key.removeprefix("fix_op_") for s in at.selectbox if (s.key or "").startswith("fix_op_")]


def row_notes(at: AppTest) -> list[str]:
    """The warnings beside shape-fix rows (the summary's warnings above are others)."""
    return [plain(w.value) for w in at.warning if "use the conversion offered above" in plain(w.value)]


def test_transposed_rows_offer_the_transpose_first_and_preselect_nothing_lossy(pair) -> None:
    at = shape_fixes(pair)
    rows = fix_rows(at)
    source = torch.load(pair[0], weights_only=True)
    transposed = [k for k, v in source.items() if v.ndim == 2 and v.shape[0] != v.shape[1]
                  and k.endswith(("c_attn.weight", "c_fc.weight", "c_proj.weight"))]
    assert sorted(rows) == sorted(transposed) and counts(at)["mismatch"] == len(rows)
    for key in rows:
        offered = at.selectbox(key=f"fix_convert_{key}")
        assert "transpose" in offered.options[0] and "transpose" in offered.value, key
        assert any(o == "transpose (this key)" for o in offered.options), key
        assert at.selectbox(key=f"fix_op_{key}").value is None, key       # no adapter chosen for the visitor
        assert at.button(key=f"fix_apply_{key}").disabled, key
    assert not row_notes(at)
    # a lossy adapter on a transposed tensor is named beside the row before anything is applied
    key = rows[0]
    for op in LOSSY_ADAPT_OPS[1:2] + ("reinit",):          # resize fits any shape: the trap of the issue
        at.selectbox(key=f"fix_op_{key}").set_value(op).run()
        no_failure(at)
        lines = row_notes(at)
        assert len(lines) == 1 and f"{op} on '{key}', which is stored transposed" in lines[0], lines
    assert counts(at)["mismatch"] == len(rows)              # still nothing applied


def test_applying_the_transpose_converts_and_the_merge_is_the_transposed_source(pair, downloads) -> None:
    at = shape_fixes(pair)
    rows = fix_rows(at)
    first = rows[0]
    at.selectbox(key=f"fix_convert_{first}").set_value("transpose (this key)").run()
    at.button(key=f"fix_convert_apply_{first}").click().run()
    no_failure(at)
    assert counts(at)["converted"] == 1 and counts(at)["mismatch"] == len(rows) - 1
    assert first not in fix_rows(at)
    second = fix_rows(at)[0]                     # the family conversion, offered first, converts the rest
    assert at.selectbox(key=f"fix_convert_{second}").value.startswith("suggested: convert")
    at.button(key=f"fix_convert_apply_{second}").click().run()
    no_failure(at)
    assert counts(at)["mismatch"] == 0 and counts(at)["converted"] >= len(rows)
    view(at, "Download")
    at.radio(key="out_format").set_value(".safetensors").run()
    at.button(key="build_merged").click().run()
    no_failure(at)
    merged = safetensors.torch.load(download_bytes(at, "download_merged_button", downloads))
    source = torch.load(pair[0], weights_only=True)
    for key in rows:
        assert torch.equal(merged[key], source[key].t()), key
    model = gpt_pair.nanogpt()
    model.load_state_dict(merged, strict=True)
    reference = gpt_pair.gpt2()
    reference.load_state_dict(source)
    idx = torch.tensor([[1, 5, 2, 7]])
    assert torch.allclose(model(idx), reference(idx), atol=1e-5)


def test_only_a_lossy_fit_is_never_preselected_and_the_refusal_names_conversions(pair) -> None:
    at = new_app()                                    # 100 classes onto 10: only truncate fits
    upload(at, "source", "classifier_100.pt", (SAMPLES / "classifier_100.pt").read_bytes())
    upload(at, "target", "classifier_10.pt", (SAMPLES / "classifier_10.pt").read_bytes())
    view(at, "Shape fixes")
    rows = fix_rows(at)
    assert sorted(rows) == ["fc.bias", "fc.weight"]
    assert all(at.selectbox(key=f"fix_op_{key}").value is None for key in rows)
    key = "fc.weight"
    assert not [s for s in at.selectbox if (s.key or "").startswith("fix_convert_")]    # nothing structural
    at.selectbox(key=f"fix_op_{key}").set_value("truncate").run()
    assert any("truncate drops or blends trained values" in plain(c.value) for c in at.caption)
    assert not row_notes(at)
    transposed = shape_fixes(pair)
    view(transposed, "Download")
    refusal = [plain(e.value) for e in transposed.error if "refused" in e.value]
    assert refusal and "convert the" in refusal[0] and ": transpose) with a convert entry" in refusal[0]
    assert "conversions, shape fixes" in refusal[0]
