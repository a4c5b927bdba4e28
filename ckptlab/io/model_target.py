"""A model definition standing as a checkpoint: ``package.module:callable`` or ``file.py:callable``.

Users rarely have a target checkpoint; they have a model class. The model is built on the
meta device first, which gives every key, shape and dtype at once and allocates nothing,
even for billions of parameters. Its initial values are built for real (seeded, on CPU)
only when a tensor is first asked for, once, and then cached.

``file.py:callable`` executes that file, so it needs ``allow_code=True`` or the
environment variable ``CKPTLAB_ALLOW_CODE=1``; ``package.module:callable`` imports an
installed (or current-folder) module, the same trust as ``import``: a spec is code.

That trust fits the CLI and the API (the user runs their own code) but not a web page, where
the spec comes from a visitor: ``os:system`` is an importable callable too. So every function
here takes ``allow``: None trusts any importable spec; a ``ModelAllowlist`` (what the web
app always passes) builds only the bundled sample models, transformers models from a config
and what the server's operator lists, and checks each spec before anything is imported.
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

__all__ = ["ALLOW_CODE_ENV", "HOW_TO_ALLOW", "MODEL_ALLOW_ENV", "SAMPLE_MODELS", "ModelSpec", "code_allowed",
    "resolve", "CODE_KWARGS", "CONFIG_FROM_FILE", "ModelAllowlist", "parse_allow_entries",
    "is_typed_argument", "build_arguments", "MAX_ARGUMENT_DEPTH", "config_argument", "MAX_CONFIG_BYTES",
    "read_config", "AUTO_MODEL", "config_model_class", "transformers_target", "build_model",
    "ModelCheckpoint", "model_target", "parse_kwargs"]

ALLOW_CODE_ENV = "CKPTLAB_ALLOW_CODE"
HOW_TO_ALLOW = f"pass --allow-code or set {ALLOW_CODE_ENV}=1"
MODEL_ALLOW_ENV = "CKPTLAB_MODEL_ALLOW"
SAMPLE_MODELS = "sample_ckpts.models"


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


def resolve(spec: str | ModelSpec, allow_code: bool | None = None, allow: "ModelAllowlist | None" = None,
            role: str = "model") -> Callable[..., Any]:
    """The callable a spec names; a file spec runs its file only when code is allowed.
    Under an allowlist the spec is checked before its module is imported (an import runs
    code) and the object after (``role``: "model" or "argument", a typed argument)."""
    parsed = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    if allow is not None and not parsed.is_file:
        allow.check_spec(parsed, role)
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
    if allow is not None and not parsed.is_file:
        allow.check_object(parsed, obj, role)
    return obj


def _is_nn_module_class(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, nn.Module)


def _transformers_kind(obj: Any) -> str | None:
    """"model" for a transformers model class or Auto model class, "config" for a config
    class, else None (transformers is imported already: the spec named it)."""
    import transformers

    if not isinstance(obj, type):
        return None
    if issubclass(obj, transformers.PreTrainedModel) or (
            obj.__name__.startswith("AutoModel") and hasattr(obj, "_model_mapping") and hasattr(obj, "from_config")):
        return "model"
    if issubclass(obj, transformers.PretrainedConfig):
        return "config"
    return None


# kwargs keys (at any depth) that make transformers fetch or run code from elsewhere: refused under an allowlist
CODE_KWARGS = frozenset({"trust_remote_code", "auto_map", "code_revision", "use_kernels", "kernel_config",
                         "quantization_config", "revision", "token", "use_auth_token", "cache_dir", "force_download"})
CONFIG_FROM_FILE = "transformers:AutoConfig.from_pretrained"


@dataclass(frozen=True)
class ModelAllowlist:
    """The model specs a visitor of the web app may build. Built in: the bundled sample
    models (``sample_ckpts.models:*``, ``nn.Module`` classes defined there), transformers
    model classes and Auto model classes (built from a config), and as typed arguments
    transformers config classes or ``AutoConfig.from_pretrained`` of a local config.json
    under ``config_roots``. ``entries`` are the operator's own: ``pkg.module:Name`` exactly,
    or ``pkg.module:*`` for what that module itself defines (not what it imports)."""

    entries: tuple[str, ...] = ()
    config_roots: tuple[Path, ...] = ()

    @classmethod
    def from_env(cls, extra: tuple[str, ...] = (), config_roots: tuple[Path, ...] = (),
                 env: Mapping[str, str] | None = None) -> "ModelAllowlist":
        """The built-in list plus ``CKPTLAB_MODEL_ALLOW`` (comma-separated specs) plus ``extra``."""
        text = (os.environ if env is None else env).get(MODEL_ALLOW_ENV, "")
        return cls(tuple(parse_allow_entries(text)) + tuple(extra), tuple(Path(r) for r in config_roots))

    def _operator_allows(self, spec: ModelSpec) -> bool:
        exact = f"{spec.module}:{spec.attr}"
        return exact in self.entries or (f"{spec.module}:*" in self.entries and "." not in spec.attr)

    def _refuse(self, spec: ModelSpec, role: str) -> ModelSpecError:
        exact = f"{spec.module}:{spec.attr}"
        what = "sample models, transformers models" if role == "model" else "transformers config classes"
        return ModelSpecError(f"model {'spec' if role == 'model' else 'argument class'} {exact!r} refused: the web "
                              f"app builds only {what} and specs its operator allows (set {MODEL_ALLOW_ENV}={exact} "
                              f"or ckptlab app --allow-model {exact})")

    def check_spec(self, spec: ModelSpec, role: str) -> None:
        """Before any import: the spec's text must be one the list can allow."""
        if self._operator_allows(spec):
            return
        if role == "model" and spec.module == SAMPLE_MODELS and "." not in spec.attr:
            return
        if spec.module == "transformers" and ("." not in spec.attr
                                              or (role == "argument" and f"{spec.module}:{spec.attr}" == CONFIG_FROM_FILE)):
            return
        raise self._refuse(spec, role)

    def check_object(self, spec: ModelSpec, obj: Any, role: str) -> None:
        """After the import: a wildcard allows only what its module defines, the built-in
        rules only model classes (``role`` "model") or config classes (typed arguments)."""
        exact = f"{spec.module}:{spec.attr}"
        if exact in self.entries or exact == CONFIG_FROM_FILE and role == "argument":
            return
        defined_here = getattr(obj, "__module__", None) == spec.module
        if f"{spec.module}:*" in self.entries and defined_here:
            return
        if role == "model" and spec.module == SAMPLE_MODELS and defined_here and _is_nn_module_class(obj):
            return
        if spec.module == "transformers" and _transformers_kind(obj) == ("model" if role == "model" else "config"):
            return
        raise self._refuse(spec, role)

    def check_kwargs(self, kwargs: Mapping[str, Any], where: str) -> None:
        """No key that makes transformers fetch or run code, at any depth (without recursion)."""
        stack: list[tuple[Any, str]] = [(kwargs, where)]
        while stack:
            value, at = stack.pop()
            if isinstance(value, Mapping):
                for key, inner in value.items():
                    name = str(key)
                    if name in CODE_KWARGS or (name.endswith("implementation") and isinstance(inner, str)
                                               and ("/" in inner or ":" in inner)):
                        raise ModelSpecError(f"model argument {at + name!r} refused: in the web app no argument "
                                             "may fetch or run code (remote code, hub kernels, revisions)")
                    stack.append((inner, f"{at}{name}."))
            elif isinstance(value, list):
                stack.extend((inner, f"{at}{i}.") for i, inner in enumerate(value))

    def check_config_file(self, kwargs: Mapping[str, Any], where: str) -> dict[str, Any]:
        """``AutoConfig.from_pretrained`` reads only a local config.json under the roots, offline."""
        from ckptlab.io.allowed_roots import check_path

        path = kwargs.get("pretrained_model_name_or_path")
        if set(kwargs) - {"pretrained_model_name_or_path", "local_files_only"} or not isinstance(path, str):
            raise ModelSpecError(f"model argument {where!r}: {CONFIG_FROM_FILE} takes only "
                                 "'pretrained_model_name_or_path' (a config.json on the server) in the web app")
        if not self.config_roots:
            raise ModelSpecError(f"model argument {where!r}: reading a config.json is off here")
        resolved = check_path(path, self.config_roots)
        self.check_kwargs(read_config(resolved), f"{where} (config.json) ")   # a visitor may have uploaded it
        return {"pretrained_model_name_or_path": str(resolved), "local_files_only": True, "trust_remote_code": False}


def parse_allow_entries(text: str) -> list[str]:
    """``"a.b:C, pkg.mod:*"`` -> the specs; a malformed one is a one-line error naming it."""
    entries = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        head, sep, tail = part.partition(":")
        if not (sep and head and all(p.isidentifier() for p in head.split("."))
                and (tail == "*" or all(p.isidentifier() for p in tail.split(".")))):
            raise ModelSpecError(f"{MODEL_ALLOW_ENV}: {part!r} is not 'pkg.module:Name' or 'pkg.module:*'")
        entries.append(part)
    return entries


def _constructor(factory: Callable[..., Any]) -> Callable[..., Any]:
    """transformers' ``AutoModel*`` classes refuse to be called: they build from a config."""
    if isinstance(factory, type) and hasattr(factory, "_model_mapping") and hasattr(factory, "from_config"):
        return factory.from_config
    return factory


def is_typed_argument(value: Any) -> bool:
    """``{"class": "pkg.module:Name", "kwargs": {...}}``: an argument that is an object to build."""
    return (isinstance(value, Mapping) and isinstance(value.get("class"), str) and set(value) <= {"class", "kwargs"})


def build_arguments(kwargs: Mapping[str, Any], allow_code: bool | None, where: str = "",
                    allow: ModelAllowlist | None = None) -> dict[str, Any]:
    """The keyword arguments with every typed argument built first, inner ones before outer ones,
    under the same import rules as the model spec (a file spec needs code allowed).

    ``{"config": {"class": "transformers:BertConfig", "kwargs": {"num_labels": 3}}}`` passes
    ``config=BertConfig(num_labels=3)``: JSON cannot say "an object of this class" otherwise.
    Under an allowlist a class must be a config class it allows, and no key may fetch code.
    """
    if allow is not None:
        allow.check_kwargs(kwargs, where)
    return {key: _argument(value, allow_code, f"{where}{key}", 0, allow) for key, value in kwargs.items()}


MAX_ARGUMENT_DEPTH = 16


def _argument(value: Any, allow_code: bool | None, where: str, depth: int, allow: ModelAllowlist | None) -> Any:
    if depth > MAX_ARGUMENT_DEPTH:
        raise ModelSpecError(f"model argument {where!r} is nested deeper than {MAX_ARGUMENT_DEPTH} levels")
    if is_typed_argument(value):
        spec, inner = value["class"], value.get("kwargs") or {}
        if not isinstance(inner, Mapping):
            raise ModelSpecError(f"model argument {where!r}: 'kwargs' must be a JSON object")
        factory = _constructor(resolve(spec, allow_code, allow, role="argument"))
        parsed = ModelSpec.parse(spec)
        if allow is not None and f"{parsed.module}:{parsed.attr}" == CONFIG_FROM_FILE:
            inner = allow.check_config_file(inner, where)
        built = {k: _argument(v, allow_code, f"{where}.{k}", depth + 1, allow) for k, v in inner.items()}
        try:
            return factory(**built)
        except Exception as exc:
            raise ModelSpecError(f"model argument {where!r}: building {spec!r} raised {_one_line(exc)}") from exc
    if isinstance(value, Mapping):
        return {k: _argument(v, allow_code, f"{where}.{k}", depth + 1, allow) for k, v in value.items()}
    if isinstance(value, list):
        return [_argument(v, allow_code, f"{where}.{i}", depth + 1, allow) for i, v in enumerate(value)]
    return value


def config_argument(path: str | os.PathLike) -> dict[str, Any]:
    """The typed ``config`` argument for a transformers model from a local ``config.json``
    (or the folder holding it): read offline, its own code never run (no ``trust_remote_code``)."""
    path = Path(path).expanduser()
    if not (path.is_file() or (path / "config.json").is_file()):
        raise ModelSpecError(f"no config.json at {str(path)!r}", path)
    return {"class": "transformers:AutoConfig.from_pretrained",
            "kwargs": {"pretrained_model_name_or_path": str(path), "local_files_only": True}}


MAX_CONFIG_BYTES = 4 * 2**20      # a model's config.json is a few KB; a bigger one is not one


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """A ``config.json`` (or the folder holding one) as data: bounded in size, a JSON object
    with a ``model_type``, else a one-line error naming the file."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "config.json"
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ModelSpecError(f"cannot read config.json: {exc.strerror or exc}", path) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ModelSpecError(f"config.json is over {MAX_CONFIG_BYTES >> 20} MB: not a model config", path)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" ({exc.msg} at line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise ModelSpecError(f"config.json is not valid JSON{where}", path) from None
    if not isinstance(data, dict) or not isinstance(data.get("model_type"), str):
        raise ModelSpecError("config.json has no 'model_type': not a transformers model config", path)
    return data


AUTO_MODEL = "AutoModel"


def config_model_class(config: Mapping[str, Any]) -> str | None:
    """The transformers model class a config names in ``architectures`` (``GPT2LMHeadModel``),
    when transformers has it; None when the config names none (the caller picks one)."""
    import transformers

    for name in config.get("architectures") or []:
        if isinstance(name, str) and name.isidentifier() and isinstance(getattr(transformers, name, None), type):
            return name
    return None


def transformers_target(config_path: str | os.PathLike, model_class: str | None = None) -> tuple[str, dict[str, Any]]:
    """The model spec and kwargs of the transformers model a local ``config.json`` describes:
    ``model_class`` (a transformers class name), else the one ``architectures`` names, else
    ``AutoModel``; the config itself read offline (``config_argument``), its code never run."""
    config = read_config(config_path)
    name = model_class or config_model_class(config) or AUTO_MODEL
    if not name.isidentifier():
        raise ModelSpecError(f"model class {name!r} is not a transformers class name", config_path)
    return f"transformers:{name}", {"config": config_argument(config_path)}


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
    allow: ModelAllowlist | None = None,
) -> nn.Module:
    """Build the model. ``device="meta"`` allocates nothing; otherwise it is built on CPU
    with ``torch.manual_seed(seed)`` (the caller's RNG state is left as it was) and moved,
    so the same seed gives the same values on every device. ``allow``: see ``ModelAllowlist``."""
    factory = resolve(spec, allow_code, allow)
    kwargs = build_arguments(kwargs or {}, allow_code, allow=allow)  # typed arguments (a config object) first
    if torch.device(device).type == "meta":
        _forget_stale_constructors()
        with torch.device("meta"):
            return _call(factory, spec, kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _call(factory, spec, kwargs)
    return model.to(device)


def _forget_stale_constructors() -> None:
    """``torch.device("meta")`` redirects the factory functions torch listed the first time a
    device context was entered in the process (a cached set). transformers'
    ``meta_device_safe_creation_ops`` swaps ``torch.linspace`` for a wrapper while its models
    load, so a process that loaded one first may have cached the wrapper: ``torch.linspace``
    then makes real CPU tensors under the meta context, and a constructor that cannot run on
    meta (``.item()`` of a drop-path schedule) seems to. Recompute the set when it is stale."""
    constructors = getattr(getattr(torch.utils, "_device", None), "_device_constructors", None)
    if constructors is not None and hasattr(constructors, "cache_clear") and torch.linspace not in constructors():
        constructors.cache_clear()


@dataclass
class _Materialiser:
    """Builds the real (seeded) model the first time any of its values is needed."""

    spec: str
    kwargs: dict[str, Any]
    allow_code: bool | None
    seed: int
    allow: ModelAllowlist | None = None
    _state: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    def state(self) -> dict[str, torch.Tensor]:
        if self._state is None:
            model = build_model(self.spec, self.kwargs, self.allow_code, device="cpu", seed=self.seed,
                                allow=self.allow)
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
                 meta_model: nn.Module, real_model: nn.Module | None = None, allow: ModelAllowlist | None = None):
        self.spec = spec
        self.kwargs = dict(kwargs)
        self.allow_code = allow_code
        self.allow = allow           # every later build (values, verify) is checked as the first was
        self.seed = seed
        self._materialiser = _Materialiser(spec, self.kwargs, allow_code, seed, allow)
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
        return build_model(self.spec, self.kwargs, self.allow_code, device=device, seed=self.seed, allow=self.allow)


def model_target(
    spec: str,
    kwargs: Mapping[str, Any] | str | None = None,
    allow_code: bool | None = None,
    seed: int = 0,
    allow: ModelAllowlist | None = None,
) -> ModelCheckpoint:
    """The target checkpoint of a model definition (keys/shapes now, values on first need).

    ``kwargs`` is a mapping or a JSON object text. A constructor that cannot run on the
    meta device (e.g. ``torch.linspace(...)[i].item()``, as timm computes drop-path rates)
    is built once for real instead, seeded; ``metadata["built_on"]`` says which happened.
    ``allow``: None builds any importable spec (CLI, API); the web app passes its ``ModelAllowlist``.
    """
    kwargs = parse_kwargs(kwargs)
    try:
        meta_model = build_model(spec, kwargs, allow_code, device="meta", allow=allow)
    except ModelSpecError as exc:
        if not getattr(exc, "during_call", False):
            raise
        real = build_model(spec, kwargs, allow_code, device="cpu", seed=seed, allow=allow)
        return ModelCheckpoint(spec, kwargs, allow_code, seed, real, real_model=real, allow=allow)
    return ModelCheckpoint(spec, kwargs, allow_code, seed, meta_model, allow=allow)


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
