"""Proof, not hope: run the source model and the target model holding the merged result on the
same seeded inputs, and say whether they compute the same thing.

A table of fed keys cannot show a square weight loaded untransposed or q/k/v in the wrong
order; the outputs can. When they differ, forward hooks on both models compare each target
module with the source module that feeds its parameters (paired through the alignment), in
the order the target runs them: the first pair that differs is where the recipe went wrong.

Models are found, in order: the ones given; a side that is a model definition or an
``nn.Module``; a ``config.json`` beside a side's file (``transformers``, offline, no remote
code). A side that cannot be built gives ``proved=False`` and the reason, never an exception.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ckptlab.errors import CheckpointError
from ckptlab.io.checkpoint import Checkpoint
from ckptlab.io.model_target import ModelCheckpoint
from ckptlab.models.inputs import infer_input_shape, token_vocab

__all__ = ["MAX_PARAMS", "Proof", "prove"]

MAX_PARAMS = 200_000_000   # per side, built unless full_scale: 0.8 GB of float32 each
SEQUENCE = 8               # tokens per example row: enough to mix positions, small enough for any context
BATCH = 2
# ops after which a module computes the same outputs from the same inputs (the weight is only
# stored otherwise); a rope permute or a chunk changes what the module outputs, by design
SAME_OUTPUT_OPS = frozenset({"transpose", "permute", "reshape", "squeeze", "unsqueeze"})


@dataclass
class Proof:
    """Whether both models computed the same outputs, and if not, where they first parted."""

    proved: bool
    max_abs: float | None            # largest |source - target| output difference (None: nothing ran)
    first_divergence: str | None     # the first target module whose output differs from its source module
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The contract's ``"proof"`` object."""
        return {"proved": self.proved, "max_abs": self.max_abs, "first_divergence": self.first_divergence,
                "reason": self.reason}

    def describe(self) -> str:
        """One line: ``proved: outputs equal (max |diff| 3.1e-07)`` or why not."""
        if self.proved:
            return f"proved: outputs equal (max |diff| {self.max_abs:.2g})"
        if self.first_divergence is not None:
            return f"not proved: first divergence at {self.first_divergence!r} (max |diff| {self.max_abs:.2g})"
        return f"not proved: {self.reason}"


class _NotProvable(Exception):
    """Why a job cannot be proved (becomes ``Proof.reason``)."""


def prove(alignment: Any, *, source_model: nn.Module | None = None, target_model: nn.Module | None = None,
          seed: int = 0, atol: float = 1e-5, result: Any = None, full_scale: bool = False) -> Proof:
    """Build both models, load the source tensors into the source model and the merged result
    into the target model, run seeded inputs through both (eval mode, no grad) and compare.

    ``source_model``/``target_model``: structures to load (copied, never changed). ``result``:
    a merged checkpoint already written (path or Checkpoint) instead of the alignment's merge
    plan. Sides of more than ``MAX_PARAMS`` parameters are built only with ``full_scale``.
    """
    try:
        source = _model("source", source_model, alignment.source, full_scale, seed).eval()
        target = _model("target", target_model, alignment.target, full_scale, seed).eval()
        source_keys = _load(source, alignment.source, "source tensors", "source model")
        merged = _merged(alignment, result)
        target_keys = _load(target, merged, "merged result", "target model")
        return _compare(alignment, source, target, source_keys, target_keys, seed, atol)
    except _NotProvable as exc:
        return Proof(False, None, None, str(exc))


# -- the two models ----------------------------------------------------------------------------
def _model(side: str, given: Any, ck: Checkpoint, full_scale: bool, seed: int) -> nn.Module:
    """A fresh module for one side (a given or wrapped module is deep-copied: proving changes nothing)."""
    if given is not None:
        if not isinstance(given, nn.Module):
            raise _NotProvable(f"the {side} model cannot be built: {side}_model is a {type(given).__name__}, "
                               "not a torch.nn.Module")
        return copy.deepcopy(given)
    wrapped = getattr(ck, "module", None)   # Checkpoint.from_module keeps the module it wraps
    if isinstance(wrapped, nn.Module):
        return copy.deepcopy(wrapped)
    if not full_scale and ck.total_params > MAX_PARAMS:
        raise _NotProvable(f"the {side} model is not built: {ck.total_params:,} parameters, more than the "
                           f"{MAX_PARAMS:,} built by default (ask for full scale: full_scale=True, --prove-full)")
    if isinstance(ck, ModelCheckpoint):
        try:
            return ck.build("cpu")
        except CheckpointError as exc:
            raise _NotProvable(f"the {side} model cannot be built: {exc}") from None
    folder = _config_folder(ck)
    if folder is None:
        raise _NotProvable(f"the {side} model cannot be built: {ck.name} is a bare checkpoint (no model "
                           f"definition, no config.json beside it); give the {side} as a model definition "
                           f"(--{side}-config, a model spec) or pass {side}_model=")
    return _from_config(side, folder, seed)


def _config_folder(ck: Checkpoint) -> Path | None:
    """The folder of a side's file when a ``config.json`` sits there."""
    if not ck.path:
        return None
    path = Path(ck.path)
    folder = path if path.is_dir() else path.parent
    return folder if (folder / "config.json").is_file() else None


def _from_config(side: str, folder: Path, seed: int) -> nn.Module:
    """The ``transformers`` model a ``config.json`` describes: its ``architectures[0]`` when
    transformers has that class, else ``AutoModel``; read offline, no remote code, seeded."""
    where = folder / "config.json"
    try:
        import transformers
        from transformers import AutoConfig, AutoModel
    except ImportError:
        raise _NotProvable(f"the {side} model cannot be built from {where}: transformers is not installed") from None
    try:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
        names = getattr(config, "architectures", None) or []
        cls = getattr(transformers, names[0], None) if names else None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel):
                return cls(config)
            return AutoModel.from_config(config)
    except Exception as exc:  # noqa: BLE001 - any failure of a third party's build is one reason line
        raise _NotProvable(f"the {side} model cannot be built from {where}: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


# -- loading -------------------------------------------------------------------------------------
def _merged(alignment: Any, result: Any) -> Checkpoint:
    """The merge result as a Checkpoint: the file given, or the alignment's merge plan."""
    if result is not None:
        from ckptlab.io.sources import as_checkpoint

        try:
            return as_checkpoint(result)
        except CheckpointError as exc:
            raise _NotProvable(f"the merged result cannot be read: {exc}") from None
    from ckptlab.merge.merged_view import merged_checkpoint
    from ckptlab.merge.planning import plan

    try:
        return merged_checkpoint(plan(alignment))
    except CheckpointError as exc:
        raise _NotProvable(f"the merged result cannot be built: {exc}") from None


def _load(model: nn.Module, ck: Checkpoint, what: str, into: str) -> dict[str, str]:
    """Load ``ck`` into ``model`` (every model key, strictly); returns model key -> checkpoint key."""
    keys = _key_map(model, ck, what, into)
    state = model.state_dict()
    for model_key, ck_key in keys.items():
        shape = tuple(ck.info(ck_key).shape)
        if shape != tuple(state[model_key].shape):
            raise _NotProvable(f"the {what} do not fit the {into}: {ck_key!r} is {shape}, "
                               f"the model's {model_key!r} {tuple(state[model_key].shape)}")
    try:
        model.load_state_dict({k: ck.tensor(c) for k, c in keys.items()}, strict=True)
    except (CheckpointError, RuntimeError) as exc:
        raise _NotProvable(f"the {what} cannot be loaded into the {into}: {_one_line(exc)}") from None
    return keys


def _key_map(model: nn.Module, ck: Checkpoint, what: str, into: str) -> dict[str, str]:
    """Model key -> checkpoint key: by name (a tied key may come through its partner), else by
    the renames transformers itself applies on load (legacy names such as ViT 4.x), else by the
    sure renames of ``align(auto="high")`` (a prefix, a container); never a guess."""
    wanted = list(model.state_dict().keys())
    partner = _tie_partners(model)
    unfed: list[str] = []
    for found in (lambda: {k: k for k in wanted if k in ck}, lambda: _transformers_renames(model, ck),
                  lambda: _sure_renames(model, ck)):
        keys = found()
        keys = {k: keys.get(k) or next((keys[p] for p in partner.get(k, ()) if keys.get(p)), None) for k in wanted}
        unfed = [k for k in wanted if keys[k] is None]
        if not unfed:
            return keys
    raise _NotProvable(f"the {what} do not fit the {into}: {len(unfed)} of its {len(wanted)} keys get no "
                       f"tensor by name or by a sure rename (first: {unfed[0]!r})")


def _sure_renames(model: nn.Module, ck: Checkpoint) -> dict[str, str]:
    from ckptlab.align.matcher import align

    fitted = align(ck, Checkpoint.from_module(model), auto="high")
    return {row.target: row.source for row in fitted.rows
            if row.target is not None and row.status in ("exact", "renamed")}


def _transformers_renames(model: nn.Module, ck: Checkpoint) -> dict[str, str]:
    """What ``from_pretrained`` would rename each checkpoint key to (renames only: a key its
    converters would fuse or split is left out); {} for other models or another transformers."""
    try:
        from transformers import PreTrainedModel
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightRenaming, rename_source_key
    except ImportError:
        return {}
    if not isinstance(model, PreTrainedModel):
        return {}
    try:
        renamings = [t for t in get_model_conversion_mapping(model) if isinstance(t, WeightRenaming)]
        state = model.state_dict()
        keys: dict[str, str] = {}
        for key in ck:
            new, _ = rename_source_key(key, renamings, [], model.base_model_prefix, state)
            if new in state:
                keys.setdefault(new, key)
        return keys
    except Exception:  # noqa: BLE001 - transformers' internals moved: fall back to ckptlab's own renames
        return {}


def _tie_partners(model: nn.Module) -> dict[str, list[str]]:
    """Key -> the other keys naming the same tensor (a tied head and its embedding)."""
    groups: dict[int, list[str]] = {}
    for key, value in model.state_dict(keep_vars=True).items():
        groups.setdefault(id(value), []).append(key)
    return {k: [o for o in keys if o != k] for keys in groups.values() if len(keys) > 1 for k in keys}


# -- running and comparing -----------------------------------------------------------------------
def _compare(alignment: Any, source: nn.Module, target: nn.Module, source_keys: dict[str, str],
             target_keys: dict[str, str], seed: int, atol: float) -> Proof:
    inputs = _inputs(source, target, seed)
    pairs = _pairs(alignment, source, target, source_keys, target_keys)
    with _Recorder(source, set(pairs.values())) as seen_source, _Recorder(target, set(pairs)) as seen_target:
        expected = _run(source, inputs, "source")
        got = _run(target, inputs, "target")
    if expected.shape != got.shape:
        return Proof(False, None, None, f"outputs differ in shape: source {tuple(expected.shape)} vs target "
                                        f"{tuple(got.shape)}")
    max_abs = _max_abs(expected, got)
    if max_abs is None:
        return Proof(False, None, None, "the outputs hold NaN or inf")
    fed = f" on {_input_text(inputs)}"
    if max_abs <= atol:
        return Proof(True, max_abs, None, f"outputs equal within {atol:g} (max |diff| {max_abs:.2g}){fed}")
    first = _first_divergence(seen_target, seen_source, pairs, atol)
    unfed = [r.target for r in alignment.rows if r.target is not None and r.status in ("missing", "mismatch")]
    kept = f"; {len(unfed)} target keys keep their init (first: {unfed[0]!r})" if unfed else ""
    if first is None:
        return Proof(False, max_abs, None, f"outputs differ (max |diff| {max_abs:.2g}){fed}, but no aligned "
                                           f"module pair differs by more than {atol:g}{kept}")
    return Proof(False, max_abs, first[0], f"outputs differ (max |diff| {max_abs:.2g}){fed}; the first target "
                                           f"module whose output differs from its source module is {first[0]!r} "
                                           f"(vs {pairs[first[0]]!r}, max |diff| {first[1]:.2g}){kept}")


def _inputs(source: nn.Module, target: nn.Module, seed: int) -> torch.Tensor:
    """Seeded inputs both models take: token ids below both vocabularies, or images."""
    gen = torch.Generator().manual_seed(seed)
    vocabs = token_vocab(source), token_vocab(target)
    if None not in vocabs:
        length = min([SEQUENCE, *_limits(source, "max_position_embeddings", "n_positions", "block_size"),
                      *_limits(target, "max_position_embeddings", "n_positions", "block_size")])
        return torch.randint(0, min(vocabs), (BATCH, length), generator=gen)
    if vocabs != (None, None):
        raise _NotProvable("the two models take different inputs (token ids on one side only)")
    try:
        shape = infer_input_shape(source, BATCH)
    except CheckpointError as exc:
        raise _NotProvable(str(exc)) from None
    side = next(iter(_limits(source, "image_size", "img_size") + _limits(target, "image_size", "img_size")), None)
    if side is not None and len(shape) > 2:
        shape = (*shape[:2], *([side] * (len(shape) - 2)))
    return torch.randn(shape, generator=gen)


def _limits(model: nn.Module, *names: str) -> list[int]:
    """The values of ``names`` in the model's config (or its modules', e.g. timm's ``img_size``)."""
    found = []
    for holder in (getattr(model, "config", None), *model.modules()):
        for name in names:
            value = getattr(holder, name, None)
            if isinstance(value, (tuple, list)) and value and isinstance(value[0], int):
                value = value[0]
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                found.append(value)
    return found


def _input_text(inputs: torch.Tensor) -> str:
    kind = "token ids" if not inputs.is_floating_point() else "random inputs"
    return f"{kind} {tuple(inputs.shape)}"


def _run(model: nn.Module, inputs: torch.Tensor, side: str) -> torch.Tensor:
    try:
        with torch.no_grad():
            out = _first_tensor(model(inputs))
    except Exception as exc:  # noqa: BLE001 - a model's forward may raise anything: one reason line
        raise _NotProvable(f"the {side} model did not run on {_input_text(inputs)}: {_one_line(exc)}") from None
    if out is None:
        raise _NotProvable(f"the {side} model returned no tensor")
    return out


def _first_tensor(value: Any) -> torch.Tensor | None:
    """A module's main output: the tensor itself, or the first tensor of a tuple or a
    ``ModelOutput`` (logits, last_hidden_state)."""
    if isinstance(value, torch.Tensor):
        return value
    items = value.values() if isinstance(value, Mapping) else value if isinstance(value, (tuple, list)) else ()
    for item in items:
        found = _first_tensor(item)
        if found is not None:
            return found
    return None


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float | None:
    if not a.numel():
        return 0.0
    value = (a.double() - b.double()).abs().max().item()
    return value if math.isfinite(value) else None


class _Recorder:
    """Forward hooks that keep each named module's first output, in the order modules finish."""

    def __init__(self, model: nn.Module, names: set[str]):
        self.model, self.names, self.outputs, self.handles = model, names, {}, []

    def __enter__(self) -> dict[str, torch.Tensor]:
        for name, module in self.model.named_modules():
            if name in self.names:
                self.handles.append(module.register_forward_hook(self._hook(name)))
        return self.outputs

    def _hook(self, name: str):
        def keep(_module, _args, output):
            if name not in self.outputs:
                found = _first_tensor(output)
                if found is not None:
                    self.outputs[name] = found.detach()
        return keep

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()


def _first_divergence(seen_target: dict[str, torch.Tensor], seen_source: dict[str, torch.Tensor],
                      pairs: dict[str, str], atol: float) -> tuple[str, float] | None:
    """The first target module (in the order it finished) whose output differs from its source's."""
    for name, out in seen_target.items():
        theirs = seen_source.get(pairs[name])
        if theirs is None or theirs.shape != out.shape:
            continue
        diff = _max_abs(theirs, out)
        if diff is None or diff > atol:
            return name, (math.inf if diff is None else diff)
    return None


# -- pairing modules through the alignment ------------------------------------------------------
def _pairs(alignment: Any, source: nn.Module, target: nn.Module, source_keys: dict[str, str],
           target_keys: dict[str, str]) -> dict[str, str]:
    """Target module -> the source module whose output it should equal.

    A module with parameters of its own pairs with the one source module holding every tensor
    that feeds them, when each is fed as stored (by name, renamed, or transposed-like: the same
    outputs); a container pairs with the deepest source module holding all its feeding tensors.
    """
    rows = {row.target: row for row in alignment.rows if row.target is not None}
    source_model_key: dict[str, str] = {}
    for model_key, ck_key in source_keys.items():   # a checkpoint key's own name first (tied pairs)
        if model_key == ck_key or ck_key not in source_model_key:
            source_model_key[ck_key] = model_key
    feeds: dict[str, tuple[list[str], bool]] = {}   # target model key -> (source modules, same output)
    for model_key, ck_key in target_keys.items():
        row = rows.get(ck_key)
        if row is None or not row.fed:
            continue
        modules = [_module_of(source_model_key[s]) for s in (row.sources or (row.source,)) if s in source_model_key]
        if modules:
            feeds[model_key] = (modules, _same_output(row))
    source_names = {name for name, _ in source.named_modules()}
    pairs = {}
    for name, _ in target.named_modules():
        paired = _pair(name, feeds) if name else None
        if paired and paired in source_names:
            pairs[name] = paired
    return pairs


def _pair(name: str, feeds: dict[str, tuple[list[str], bool]]) -> str | None:
    own = [feeds[k] for k in feeds if _module_of(k) == name]
    if own:
        modules = {m for mods, _ in own for m in mods}
        return modules.pop() if len(modules) == 1 and all(same for _, same in own) else None
    inside = [m for k, (mods, _) in feeds.items() if k.startswith(name + ".") for m in mods]
    return _common_module(inside) if inside else None


def _same_output(row: Any) -> bool:
    if row.status in ("exact", "renamed"):
        return True
    return row.status == "converted" and all(op.name in SAME_OUTPUT_OPS for op in row.convert.ops)


def _module_of(key: str) -> str:
    return key.rpartition(".")[0]


def _common_module(modules: list[str]) -> str | None:
    parts = [m.split(".") for m in modules]
    common = []
    for names in zip(*parts):
        if len(set(names)) != 1:
            break
        common.append(names[0])
    return ".".join(common) or None
