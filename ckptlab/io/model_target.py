"""A model definition standing as a checkpoint: ``package.module:callable`` or ``file.py:callable``.

Users rarely have a target checkpoint; they have a model class. The model is built on the
meta device first, which gives every key, shape and dtype at once and allocates nothing,
even for billions of parameters. Its initial values are built for real (seeded, on CPU)
only when a tensor is first asked for, once, and then cached.

``file.py:callable`` executes that file, so it needs ``allow_code=True`` or the
environment variable ``CKPTLAB_ALLOW_CODE=1``; ``package.module:callable`` imports an
installed (or current-folder) module, the same trust as ``import``.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ckptlab.io.checkpoint import Checkpoint
from ckptlab.errors import ModelSpecError
from ckptlab.io.formats.base import LazyTensor
from ckptlab.io.tensor_info import TensorInfo

ALLOW_CODE_ENV = "CKPTLAB_ALLOW_CODE"
HOW_TO_ALLOW = f"pass --allow-code or set {ALLOW_CODE_ENV}=1"


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec: where the callable lives and whether reaching it runs a file."""

    text: str
    module: str          # dotted module name, or the file path for a file spec
    attr: str            # attribute path inside the module, e.g. "ConvNet" or "Factory.build"
    is_file: bool

    @classmethod
    def parse(cls, spec: str) -> "ModelSpec":
        head, sep, tail = str(spec).strip().rpartition(":")
        if not sep or not head or not tail:
            raise ModelSpecError(f"model spec {spec!r} is not 'package.module:callable' or 'file.py:callable'")
        if not all(part.isidentifier() for part in tail.split(".")):
            raise ModelSpecError(f"model spec {spec!r}: {tail!r} is not a Python name")
        if head.endswith(".py"):
            return cls(str(spec), head, tail, True)
        if not all(part.isidentifier() for part in head.split(".")):
            raise ModelSpecError(f"model spec {spec!r}: {head!r} is not a dotted module name (or a .py file)")
        return cls(str(spec), head, tail, False)


def code_allowed(allow_code: bool | None) -> bool:
    """``None`` defers to the environment; an explicit ``False`` refuses whatever it says."""
    if allow_code is None:
        return os.environ.get(ALLOW_CODE_ENV) == "1"
    return bool(allow_code)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


_FILE_MODULES: dict[tuple[str, float], Any] = {}


def _import_file(spec: ModelSpec) -> Any:
    """Execute a model file once per (path, mtime) under a private module name."""
    path = Path(spec.module).expanduser().resolve()
    if not path.is_file():
        raise ModelSpecError(f"model file {spec.module!r} does not exist", spec.module)
    cache_key = (str(path), path.stat().st_mtime)
    if cache_key in _FILE_MODULES:
        return _FILE_MODULES[cache_key]
    name = "ckptlab_user_model_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ModelSpecError(f"cannot load {spec.module!r} as a Python file", spec.module)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ModelSpecError(f"running model file raised {_one_line(exc)}", spec.module) from exc
    _FILE_MODULES[cache_key] = module
    return module


def _import_module(spec: ModelSpec) -> Any:
    """Import ``spec.module``; the current folder counts too (as with ``python -m``)."""
    added = os.getcwd() not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        raise ModelSpecError(f"model spec {spec.text!r}: cannot import {spec.module!r} ({exc})") from exc
    except Exception as exc:
        raise ModelSpecError(f"model spec {spec.text!r}: importing {spec.module!r} raised {_one_line(exc)}") from exc
    finally:
        if added:
            sys.path.remove(os.getcwd())


def resolve(spec: str | ModelSpec, allow_code: bool | None = None) -> Callable[..., Any]:
    """The callable a spec names; a file spec runs its file only when code is allowed."""
    parsed = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    if parsed.is_file:
        if not code_allowed(allow_code):
            raise ModelSpecError(
                f"model spec {parsed.text!r} runs the code of {parsed.module!r}; refused ({HOW_TO_ALLOW})")
        obj = _import_file(parsed)
    else:
        obj = _import_module(parsed)
    for part in parsed.attr.split("."):
        if not hasattr(obj, part):
            raise ModelSpecError(f"model spec {parsed.text!r}: {parsed.module!r} has no attribute {parsed.attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelSpecError(f"model spec {parsed.text!r}: {parsed.attr!r} is a {type(obj).__name__}, not callable")
    return obj


def _constructor(factory: Callable[..., Any]) -> Callable[..., Any]:
    """transformers' ``AutoModel*`` classes refuse to be called: they build from a config."""
    if isinstance(factory, type) and hasattr(factory, "_model_mapping") and hasattr(factory, "from_config"):
        return factory.from_config
    return factory


def is_typed_argument(value: Any) -> bool:
    """``{"class": "pkg.module:Name", "kwargs": {...}}``: an argument that is an object to build."""
    return (isinstance(value, Mapping) and isinstance(value.get("class"), str) and set(value) <= {"class", "kwargs"})


def build_arguments(kwargs: Mapping[str, Any], allow_code: bool | None, where: str = "") -> dict[str, Any]:
    """The keyword arguments with every typed argument built first, inner ones before outer ones,
    under the same import rules as the model spec (a file spec needs code allowed).

    ``{"config": {"class": "transformers:BertConfig", "kwargs": {"num_labels": 3}}}`` passes
    ``config=BertConfig(num_labels=3)``: JSON cannot say "an object of this class" otherwise.
    """
    return {key: _argument(value, allow_code, f"{where}{key}", 0) for key, value in kwargs.items()}


MAX_ARGUMENT_DEPTH = 16


def _argument(value: Any, allow_code: bool | None, where: str, depth: int) -> Any:
    if depth > MAX_ARGUMENT_DEPTH:
        raise ModelSpecError(f"model argument {where!r} is nested deeper than {MAX_ARGUMENT_DEPTH} levels")
    if is_typed_argument(value):
        spec, inner = value["class"], value.get("kwargs") or {}
        if not isinstance(inner, Mapping):
            raise ModelSpecError(f"model argument {where!r}: 'kwargs' must be a JSON object")
        factory = _constructor(resolve(spec, allow_code))
        built = {k: _argument(v, allow_code, f"{where}.{k}", depth + 1) for k, v in inner.items()}
        try:
            return factory(**built)
        except Exception as exc:
            raise ModelSpecError(f"model argument {where!r}: building {spec!r} raised {_one_line(exc)}") from exc
    if isinstance(value, Mapping):
        return {k: _argument(v, allow_code, f"{where}.{k}", depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_argument(v, allow_code, f"{where}.{i}", depth + 1) for i, v in enumerate(value)]
    return value


def config_argument(path: str | os.PathLike) -> dict[str, Any]:
    """The typed ``config`` argument for a transformers model from a local ``config.json``
    (or the folder holding it): read offline, its own code never run (no ``trust_remote_code``)."""
    path = Path(path).expanduser()
    if not (path.is_file() or (path / "config.json").is_file()):
        raise ModelSpecError(f"no config.json at {str(path)!r}", path)
    return {"class": "transformers:AutoConfig.from_pretrained",
            "kwargs": {"pretrained_model_name_or_path": str(path), "local_files_only": True}}


def _call(factory: Callable[..., Any], spec: str, kwargs: Mapping[str, Any]) -> nn.Module:
    """Call the factory; bad kwargs, an exception or a non-module each give one line."""
    factory = _constructor(factory)
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as exc:
        raise ModelSpecError(f"model spec {spec!r}: wrong kwargs {sorted(kwargs)}: {exc}") from None
    except ValueError:
        pass  # no signature to check (a builtin): let the call decide
    try:
        model = factory(**kwargs)
    except Exception as exc:
        error = ModelSpecError(f"model spec {spec!r}: building the model raised {_one_line(exc)}")
        error.during_call = True  # the factory itself failed (model_target may retry off the meta device)
        raise error from exc
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"model spec {spec!r} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def build_model(
    spec: str,
    kwargs: Mapping[str, Any] | None = None,
    allow_code: bool | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> nn.Module:
    """Build the model. ``device="meta"`` allocates nothing; otherwise it is built on CPU
    with ``torch.manual_seed(seed)`` (the caller's RNG state is left as it was) and moved,
    so the same seed gives the same values on every device."""
    factory = resolve(spec, allow_code)
    kwargs = build_arguments(kwargs or {}, allow_code)  # typed arguments (a config object) first
    if torch.device(device).type == "meta":
        with torch.device("meta"):
            return _call(factory, spec, kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _call(factory, spec, kwargs)
    return model.to(device)


@dataclass
class _Materialiser:
    """Builds the real (seeded) model the first time any of its values is needed."""

    spec: str
    kwargs: dict[str, Any]
    allow_code: bool | None
    seed: int
    _state: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    def state(self) -> dict[str, torch.Tensor]:
        if self._state is None:
            model = build_model(self.spec, self.kwargs, self.allow_code, device="cpu", seed=self.seed)
            self._state = {k: v.detach() for k, v in model.state_dict(keep_vars=True).items()}
        return self._state

    def loader(self, key: str) -> Callable[[], torch.Tensor]:
        return lambda: self.state()[key].clone()


class ModelCheckpoint(Checkpoint):
    """A Checkpoint whose tensors are a model definition's initial values.

    Keeps what is needed to build the model again (``spec``, ``kwargs``, ``seed``), so
    verification can run it and the UI can show where the target came from.
    """

    def __init__(self, spec: str, kwargs: Mapping[str, Any], allow_code: bool | None, seed: int,
                 meta_model: nn.Module, real_model: nn.Module | None = None):
        self.spec = spec
        self.kwargs = dict(kwargs)
        self.allow_code = allow_code
        self.seed = seed
        self._materialiser = _Materialiser(spec, self.kwargs, allow_code, seed)
        if real_model is not None:  # built for real already (no meta build possible): keep its values
            self._materialiser._state = {k: v.detach() for k, v in real_model.state_dict(keep_vars=True).items()}
        tensors = {}
        for key, value in meta_model.state_dict(keep_vars=True).items():
            # id() of the (meta) tensor object: tied parameters are the same object twice.
            tensors[key] = LazyTensor(TensorInfo.of(value), self._materialiser.loader(key),
                                      storage_id=("model", id(value)), view=(tuple(value.shape), value.dtype))
        metadata = {"name": spec, "spec": spec, "kwargs": json.dumps(self.kwargs, sort_keys=True),
                    "seed": str(seed), "class": type(meta_model).__name__,
                    "built_on": "cpu" if real_model is not None else "meta"}
        super().__init__(tensors, format="model", metadata=metadata)
        self._meta_model = meta_model
        # a model tells parameters from buffers (a file cannot): ckptlab.io.counts uses it
        self.parameter_keys = frozenset(name for name, _ in meta_model.named_parameters(remove_duplicate=False))

    @property
    def meta_model(self) -> nn.Module:
        """The model's structure: on the meta device (no values), or the real model when its
        constructor cannot run there (``metadata["built_on"] == "cpu"``)."""
        return self._meta_model

    def build(self, device: str | torch.device = "cpu") -> nn.Module:
        """A fresh, real model with this target's seed (its initial values equal ``tensor()``)."""
        return build_model(self.spec, self.kwargs, self.allow_code, device=device, seed=self.seed)


def model_target(
    spec: str,
    kwargs: Mapping[str, Any] | str | None = None,
    allow_code: bool | None = None,
    seed: int = 0,
) -> ModelCheckpoint:
    """The target checkpoint of a model definition (keys/shapes now, values on first need).

    ``kwargs`` is a mapping or a JSON object text. A constructor that cannot run on the
    meta device (e.g. ``torch.linspace(...)[i].item()``, as timm computes drop-path rates)
    is built once for real instead, seeded; ``metadata["built_on"]`` says which happened.
    """
    kwargs = parse_kwargs(kwargs)
    try:
        meta_model = build_model(spec, kwargs, allow_code, device="meta")
    except ModelSpecError as exc:
        if not getattr(exc, "during_call", False):
            raise
        real = build_model(spec, kwargs, allow_code, device="cpu", seed=seed)
        return ModelCheckpoint(spec, kwargs, allow_code, seed, real, real_model=real)
    return ModelCheckpoint(spec, kwargs, allow_code, seed, meta_model)


def parse_kwargs(kwargs: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """A mapping, a JSON object text or None -> a dict (one-line error otherwise)."""
    if kwargs is None or kwargs == "":
        return {}
    if isinstance(kwargs, str):
        try:
            kwargs = json.loads(kwargs)
        except json.JSONDecodeError as exc:
            raise ModelSpecError(f"model kwargs are not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(kwargs, Mapping):
        raise ModelSpecError(f"model kwargs must be a JSON object, got {type(kwargs).__name__}")
    return dict(kwargs)
