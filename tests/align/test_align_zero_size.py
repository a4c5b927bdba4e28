"""Zero-size tensors share no bytes, so they are never one tied group (in memory every
empty tensor sits at data_ptr 0: taken for ties, 20,000 of them made align quadratic)."""
from __future__ import annotations

import torch

from ckptlab.align.matcher import align
from ckptlab.io.checkpoint import Checkpoint


def test_empty_tensors_are_not_aliases_but_real_ties_still_are():
    shared = torch.ones(3)
    ck = Checkpoint.from_mapping({"a": torch.empty(0), "b": torch.empty(0, 4), "c": torch.zeros(0),
                                  "tied1": shared, "tied2": shared})
    assert ck.aliases() == [("tied1", "tied2")]


def test_empty_target_key_is_not_fed_through_a_tie_to_another_empty_key():
    source = {"x.w": torch.empty(0)}
    target = {"x.w": torch.empty(0), "y.w": torch.empty(0)}
    al = align(source, target, auto="none")
    assert al.row("x.w").status == "exact"
    assert al.row("y.w").status == "missing"  # not "tied to 'x.w'": they share nothing
    assert "tied" not in al.row("x.w").reason
