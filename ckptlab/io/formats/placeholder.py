"""Inert stand-ins for classes a checkpoint names but ckptlab will not import.

The restricted unpickler makes one ``Placeholder`` subclass per unknown ``module.Name``.
Building one records what the pickle passed (args, state, items) and nothing else: the
real class is never imported, so none of its code (``__init__``, ``__setstate__``, a
``__reduce__`` payload) can run. Placeholders are the only objects the unpickler lets a
file give state to (BUILD), and that state is stored as data under fixed names
(``args``, ``state``, ``items``, ``list_items``), never set as attributes. ``module_state_dict`` recovers the weights of a whole
``nn.Module`` pickled by ``torch.save(model)`` from those records.
"""
from __future__ import annotations

from dataclasses import dataclass

from typing import Any

from ckptlab.errors import UnsafePickleError
from ckptlab.io import limits
from ckptlab.io.formats.base import LazyTensor

__all__ = ["MAX_MODULE_DEPTH", "Placeholder", "make_placeholder_class", "is_placeholder", "type_name",
    "is_module", "submodules", "module_state_dict", "TypeMarker"]


MAX_MODULE_DEPTH = limits.MAX_MODULE_DEPTH  # a deeper module tree is a hostile file, not a model


class _PlaceholderMeta(type):
    """Calling a placeholder class (pickle's REDUCE) records the call instead of running it."""

    def __call__(cls, *args: Any, **kwargs: Any) -> "Placeholder":
        return cls.__new__(cls, *args, **kwargs)

    def __repr__(cls) -> str:
        return f"<placeholder class {cls.qualname}>"


class Placeholder(metaclass=_PlaceholderMeta):
    """An object of a class that was not imported: what the pickle said about it."""

    qualname = "?"
    refused = ""  # non-empty: calling this global is unsafe; the reason why
    display_name = ""  # the type name users see, when not the qualname (numpy's "ndarray")

    def __new__(cls, *args: Any, **kwargs: Any) -> "Placeholder":
        if cls.refused:
            raise UnsafePickleError(f"refusing to call {cls.qualname} while unpickling ({cls.refused})")
        obj = object.__new__(cls)
        obj.__dict__.update(args=args, kwargs=kwargs, state=None, items={}, list_items=[])
        return obj

    # -- what pickle's BUILD / SETITEMS / APPENDS do to the object --------------------------
    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__["items"][key] = value

    def append(self, value: Any) -> None:
        self.__dict__["list_items"].append(value)

    def extend(self, values: Any) -> None:
        self.__dict__["list_items"].extend(values)

    def attributes(self) -> dict[Any, Any]:
        """The instance attributes as the pickle gave them (a plain dict, maybe with slots)."""
        state = self.__dict__["state"]
        if isinstance(state, tuple) and len(state) == 2 and all(s is None or isinstance(s, dict) for s in state):
            merged: dict[Any, Any] = {}
            for part in state:
                merged.update(part or {})
            return merged
        return dict(state) if isinstance(state, dict) else {}

    def children(self) -> list[tuple[Any, Any]]:
        """Everything the object holds: attributes, mapping items, list items."""
        out = list(self.attributes().items()) + list(self.__dict__["items"].items())
        out += list(enumerate(self.__dict__["list_items"]))
        return out

    def __repr__(self) -> str:
        return f"<placeholder {self.qualname}>"


def make_placeholder_class(module: str, name: str, refused: str = "") -> type[Placeholder]:
    qualname = f"{module}.{name}"
    return _PlaceholderMeta(name, (Placeholder,), {"qualname": qualname, "refused": refused,
                                                   "__module__": "ckptlab.placeholders"})


def is_placeholder(obj: Any) -> bool:
    return isinstance(obj, Placeholder)


def type_name(obj: Any) -> str:
    """A user-facing type name: the stood-in class for placeholders."""
    if isinstance(obj, Placeholder):
        return obj.display_name or obj.qualname
    if isinstance(obj, LazyTensor):
        return "Tensor"
    return type(obj).__name__


def is_module(obj: Any) -> bool:
    """A pickled ``nn.Module``: its state has ``_parameters`` and ``_modules`` mappings."""
    if not isinstance(obj, Placeholder):
        return False
    attrs = obj.attributes()
    return isinstance(attrs.get("_parameters"), dict) and isinstance(attrs.get("_modules"), dict)


def submodules(obj: Placeholder) -> list[tuple[str, Placeholder]]:
    return [(str(k), v) for k, v in obj.attributes()["_modules"].items() if is_module(v)]


def module_state_dict(obj: Placeholder, prefix: str = "", _seen: set[int] | None = None,
                      _depth: int = 0) -> dict[str, LazyTensor]:
    """What ``module.state_dict()`` would have returned, from the pickled attributes.

    Each module is visited once (as ``named_modules()`` does), so a file whose modules
    share submodules level after level costs its size, not its number of paths."""
    seen = set() if _seen is None else _seen
    if id(obj) in seen or _depth > MAX_MODULE_DEPTH:
        return {}
    seen.add(id(obj))
    attrs = obj.attributes()
    out: dict[str, LazyTensor] = {}
    for name, value in attrs["_parameters"].items():
        if isinstance(value, LazyTensor):
            out[prefix + str(name)] = value
    skip = attrs.get("_non_persistent_buffers_set") or set()
    buffers = attrs.get("_buffers")
    if isinstance(buffers, dict):
        for name, value in buffers.items():
            if isinstance(value, LazyTensor) and not _member(name, skip):
                out[prefix + str(name)] = value
    for name, child in submodules(obj):
        out.update(module_state_dict(child, f"{prefix}{name}.", seen, _depth + 1))
    return out


def _member(name: Any, names: Any) -> bool:
    """``name in names`` for a set the file made (a list or placeholder would fail or lie)."""
    try:
        return isinstance(names, (set, frozenset, list, tuple, dict)) and name in names
    except TypeError:
        return False


@dataclass(frozen=True, slots=True)
class TypeMarker:
    """A class named as a value only (``torch.FloatTensor`` as a rebuild's ``new_type``); not callable."""

    name: str

    def __repr__(self) -> str:
        return self.name
