"""Tied weights (lm_head = embed_tokens): a checkpoint saved without the duplicate must not
leave the tied name 'missing', or its random init would overwrite the pretrained tensor."""
from __future__ import annotations

import torch
from safetensors.torch import load_file, save_file
from torch import nn

import ckptlab
from ckptlab.align.matcher import align


class TiedLM(nn.Module):
    def __init__(self, vocab: int = 11, dim: int = 4, tie: bool = True):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, dim)
        self.norm = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        if tie:
            self.lm_head.weight = self.embed_tokens.weight


def pretrained_without_duplicate(tmp_path) -> tuple:
    """What transformers/safetensors save for a tied model: lm_head.weight left out."""
    torch.manual_seed(0)
    state = {k: v.clone() for k, v in TiedLM().state_dict().items() if k != "lm_head.weight"}
    save_file(state, tmp_path / "pretrained.safetensors")
    torch.manual_seed(1)
    torch.save(TiedLM().state_dict(), tmp_path / "init.pt")  # the target file keeps the tie
    return tmp_path / "pretrained.safetensors", tmp_path / "init.pt", state["embed_tokens.weight"]


def test_the_tied_name_is_fed_through_the_tie(tmp_path):
    source, target, _ = pretrained_without_duplicate(tmp_path)
    row = align(source, target).row("lm_head.weight")
    assert (row.status, row.source) == ("renamed", "embed_tokens.weight")
    assert row.reason == "tied to 'embed_tokens.weight' in the target, which 'embed_tokens.weight' feeds"
    untied = tmp_path / "untied.pt"
    torch.save(TiedLM(tie=False).state_dict(), untied)
    assert align(source, untied).row("lm_head.weight").status == "missing"


def test_remap_keeps_the_pretrained_embedding_through_a_tied_load(tmp_path):
    source, target, embedding = pretrained_without_duplicate(tmp_path)
    for name in ("out.pt", "out.safetensors"):
        report = ckptlab.remap(source, target, tmp_path / name)
        merged = load_file(tmp_path / name) if name.endswith(".safetensors") else torch.load(
            tmp_path / name, weights_only=True)
        model = TiedLM()
        model.load_state_dict(merged, strict=True)
        assert torch.equal(model.embed_tokens.weight, embedding), name
        assert report.missing == [] and report.aliases == [["embed_tokens.weight", "lm_head.weight"]]
    merged = torch.load(tmp_path / "out.pt", weights_only=True)
    assert merged["lm_head.weight"].data_ptr() == merged["embed_tokens.weight"].data_ptr()  # still one tensor


def test_load_into_a_tied_model_reports_no_missing_key(tmp_path):
    source, _, embedding = pretrained_without_duplicate(tmp_path)
    model = TiedLM()
    report = ckptlab.load_into(model, source)
    assert report.missing == [] and torch.equal(model.lm_head.weight, embedding)


def test_two_source_tensors_for_one_tied_tensor_are_named(tmp_path):
    torch.manual_seed(0)
    torch.save(TiedLM(tie=False).state_dict(), tmp_path / "untied.pt")
    torch.save(TiedLM().state_dict(), tmp_path / "tied.pt")
    al = align(tmp_path / "untied.pt", tmp_path / "tied.pt")
    assert al.row("lm_head.weight").reason.endswith(
        "tied in the target to 'embed_tokens.weight' <- 'embed_tokens.weight': a model that ties them keeps "
        "whichever loads last")
    assert "tied in the target to 'lm_head.weight'" in al.row("embed_tokens.weight").reason
    # a source that ties them too gives one tensor: nothing to say
    al = align(tmp_path / "tied.pt", tmp_path / "tied.pt")
    assert all("tied" not in row.reason for row in al.rows)


def test_tie_survives_pt_to_safetensors_to_pt_and_inspect_shows_it(tmp_path, capsys):
    from ckptlab.cli import main

    torch.manual_seed(0)
    model = TiedLM()
    torch.save(model.state_dict(), tmp_path / "tied.pt")
    ckptlab.remap(tmp_path / "tied.pt", tmp_path / "tied.pt", tmp_path / "tied.safetensors")
    assert ckptlab.open(tmp_path / "tied.safetensors").aliases() == [("embed_tokens.weight", "lm_head.weight")]
    ckptlab.remap(tmp_path / "tied.safetensors", tmp_path / "tied.pt", tmp_path / "back.pt")
    back = torch.load(tmp_path / "back.pt", weights_only=True)
    assert back["lm_head.weight"].data_ptr() == back["embed_tokens.weight"].data_ptr()
    assert torch.equal(back["lm_head.weight"], model.embed_tokens.weight)

    assert main(["inspect", str(tmp_path / "tied.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "tied: embed_tokens.weight = lm_head.weight (one tensor under 2 names" in out
    assert main(["inspect", str(tmp_path / "tied.safetensors"), "--json"]) == 0
    import json

    assert json.loads(capsys.readouterr().out)["aliases"] == [["embed_tokens.weight", "lm_head.weight"]]


def test_alias_metadata_that_does_not_fit_is_ignored(tmp_path):
    """Groups naming absent keys or tensors of another shape never tie anything."""
    import json

    tensors = {"a": torch.zeros(2), "b": torch.ones(3), "c": torch.ones(2)}
    save_file(tensors, tmp_path / "x.safetensors",
              metadata={"ckptlab.aliases": json.dumps([["a", "b"], ["a", "zz"], "c"])})
    assert ckptlab.open(tmp_path / "x.safetensors").aliases() == []
    save_file(tensors, tmp_path / "y.safetensors", metadata={"ckptlab.aliases": "not json"})
    assert ckptlab.open(tmp_path / "y.safetensors").aliases() == []
