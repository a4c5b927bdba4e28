"""Stage 3: shape adapters for tensors that are mapped but do not fit (a classifier head whose class
count changed, a first conv whose input channels changed)."""
from __future__ import annotations

from collections import defaultdict

from ckptlab.align.suggest.rename import _parent
from ckptlab.align.suggest.state import State
from ckptlab.align.types import Suggestion, shape_text
from ckptlab.recipe.model import Recipe
from ckptlab.recipe.parsing import quote

Shape = tuple[int, ...]


# -- stage 3: shape adapters --------------------------------------------------------------
def adapter_suggestions(state: State, recipe: Recipe) -> list[Suggestion]:
    cands = state.candidates()
    mismatched: dict[str, dict[str, tuple[Shape, Shape]]] = defaultdict(dict)
    adapt, converted, mapped = recipe.adapt, state.converted, state.mapped
    source_shapes, target_shapes = state.source_shapes, state.target_shapes
    for tkey in state.target_order:
        skeys = cands.get(tkey)
        if not skeys or len(skeys) != 1 or tkey in adapt or (tkey in converted and tkey not in mapped):
            continue  # (an adapter never applies to a conversion's output)
        s_shape, t_shape = source_shapes[skeys[0]], target_shapes[tkey]
        if s_shape != t_shape:
            mismatched[_parent(tkey)][tkey] = (s_shape, t_shape)
    if not mismatched:
        return []
    first_conv = next((k for k in state.target_order if len(target_shapes[k]) == 4), None)
    out = []
    for module, keys in mismatched.items():
        found = _head(module, keys) or _input_conv(keys, first_conv) or _one_dim(module, keys)
        if found is not None:
            out.append(found)
    return out


def _differing(s: Shape, t: Shape) -> list[int]:
    return [d for d, (a, b) in enumerate(zip(s, t)) if a != b] if len(s) == len(t) else [-1]


def _resize_spec(s: int, t: int, dim: int, grow_fill: str) -> dict:
    return {"op": "pad", "dim": dim, "fill": grow_fill} if t > s else {"op": "truncate", "dim": dim}


def _head(module: str, keys: dict[str, tuple[Shape, Shape]]) -> Suggestion | None:
    """A Linear head whose output count changed: weight (C, F) and bias (C,) on dim 0."""
    weight, bias = f"{module}.weight" if module else "weight", f"{module}.bias" if module else "bias"
    if weight not in keys:
        return None
    (ws, wt) = keys[weight]
    if len(wt) != 2 or _differing(ws, wt) != [0]:
        return None
    if bias in keys and (len(keys[bias][1]) != 1 or keys[bias] != ((ws[0],), (wt[0],))):
        return None
    adapt = {weight: _resize_spec(ws[0], wt[0], 0, "init")}
    if bias in keys:
        adapt[bias] = _resize_spec(ws[0], wt[0], 0, "init")
    grow = wt[0] > ws[0]
    parts = " and ".join(k.rpartition(".")[2] for k in adapt)
    if grow:
        how = (f"pad dim 0 of {parts}: rows 0..{ws[0] - 1} keep the old outputs, the new rows keep the "
               f"target's initialisation (right when the new classes extend the old ones in order)")
    else:  # dropping trained classes is rarely what a new label set means: never medium
        how = (f"truncate dim 0 of {parts} keeps the first {wt[0]} rows: right only if the new classes are the "
               f"old first {wt[0]} in order (a background class stored last is lost); otherwise keep the "
               f"target's initialisation (on-mismatch keep-target)")
    return Suggestion({"adapt": adapt}, "medium" if grow else "low",
                      f"head {quote(module)} has {wt[0]} outputs instead of {ws[0]}: {how}", len(adapt))


def _input_conv(keys: dict[str, tuple[Shape, Shape]], first_conv: str | None) -> Suggestion | None:
    """A conv whose input channels changed (RGB -> RGBA): pad dim 1 with zeros, so the new
    channels contribute nothing and the output on the old channels is unchanged."""
    adapt, notes = {}, []
    for key, (s, t) in keys.items():
        if len(t) != 4 or _differing(s, t) != [1]:
            return None
        if t[1] > s[1]:
            adapt[key] = {"op": "pad", "dim": 1}
        elif s[1] % t[1] == 0:
            adapt[key] = {"op": "sum", "dim": 1}
        else:
            adapt[key] = {"op": "truncate", "dim": 1}
        notes.append(f"{quote(key)} takes {t[1]} input channels instead of {s[1]}")
    if not adapt:
        return None
    how = {"pad": "pad dim 1 with zeros (the old channels' output is unchanged)",
           "sum": "sum the input channels (as timm does for grayscale)", "truncate": "truncate dim 1"}
    op = next(iter(adapt.values()))["op"]
    confidence = "medium" if first_conv in adapt else "low"
    if op == "pad" and all(t[1] % s[1] == 0 for s, t in keys.values()):
        how["pad"] += "; or fill: repeat to spread the trained weights over every channel (as timm does)"
    return Suggestion({"adapt": adapt}, confidence, f"{'; '.join(notes)}: {how[op]}", len(adapt))


def _one_dim(module: str, keys: dict[str, tuple[Shape, Shape]]) -> Suggestion | None:
    """Any other tensor that differs in one dim only: pad (target's init) or truncate."""
    adapt = {}
    for key, (s, t) in keys.items():
        differ = _differing(s, t)
        if len(differ) != 1 or differ[0] < 0:
            return None
        adapt[key] = _resize_spec(s[differ[0]], t[differ[0]], differ[0], "init")
    if not adapt:
        return None
    shapes = "; ".join(f"{quote(k)} {shape_text(s)} -> {shape_text(t)}" for k, (s, t) in keys.items())
    return Suggestion({"adapt": adapt}, "low", f"one dim differs: {shapes}", len(adapt))
