"""Per-session state: the one module that touches ``st.session_state`` (with ``kept`` for
widgets and ``lifecycle`` for freeing a visit).

Every value a module keeps for the session is a ``Slot`` that module declares once
(``RECIPE = state.Slot("recipe")``): its name is spelled in one place, and no module reads
or resets another's slot but through that module's functions. When the visitor picks
another pair, ``start_pair`` resets this module's slots and the page calls each view's
``reset()`` (``ckptlab.ui.views.reset``) for theirs.

Caches (what a run reuses): ``shared`` (by content, for the whole server, or for this
session when the key names one of its uploads), ``derived`` (values of the alignment on
the page, dropped with it) and ``ckptlab.ui.valuecache`` (value scans).

Two visitors of one server never share anything private: uploads and built files live in
a temp folder owned by the session (removed when the visit ends).
"""
from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TypeVar

import streamlit as st

from ckptlab.errors import CheckpointError
from ckptlab.ui import files, heap, icons, lifecycle, text

T = TypeVar("T")
_OPENED_MAX = 6          # a few pairs; each Checkpoint is lazy, so this is cheap
_SLOTS: dict[str, str] = {}      # name -> the module that declared it


class Slot(str):
    """One value this session keeps, declared once by the module that owns it. A ``Slot`` is
    its own key (a ``str``), so tests read ``at.session_state[module.SLOT]``. ``factory``
    makes a fresh default (a dict, a list) for slots that hold containers."""

    default: Any
    factory: Callable[[], Any] | None

    def __new__(cls, name: str, default: Any = None, factory: Callable[[], Any] | None = None) -> Self:
        owner = sys._getframe(1).f_globals.get("__name__", "?")
        if _SLOTS.setdefault(name, owner) != owner:
            raise ValueError(f"session key {name!r} is declared twice ({_SLOTS[name]} and {owner})")
        slot = super().__new__(cls, name)
        slot.default, slot.factory = default, factory
        return slot

    @property
    def name(self) -> str:
        return str(self)

    def get(self) -> Any:
        if self.factory is not None:
            return st.session_state.setdefault(self.name, self.factory())
        return st.session_state.get(self.name, self.default)

    def set(self, value: Any) -> Any:
        st.session_state[self.name] = value
        return value

    def clear(self) -> None:
        st.session_state.pop(self.name, None)

    def bump(self) -> int:
        """Count up (a version that makes a widget key new)."""
        return self.set((st.session_state.get(self.name) or 0) + 1)


def declared() -> dict[str, str]:
    """Every slot's name and owner module (tests check that names are unique and owned)."""
    return dict(_SLOTS)


# -- widgets (their key is their only name; ``kept`` draws the sticky ones) ------------
def widget_value(key: str, default: Any = None) -> Any:
    return st.session_state.get(key, default)


def widget_default(key: str, default: Any) -> None:
    """``default`` as the widget's value until it has one (draw it without ``value=``)."""
    st.session_state.setdefault(key, default)


def set_widget(key: str, value: Any) -> None:
    """Set a widget's value from code (before the widget is drawn in this run)."""
    st.session_state[key] = value


_OPENED = Slot("_ckptlab_opened", factory=OrderedDict)
_SESSION_DIR = Slot("_ckptlab_session_dir")


def session_dir() -> Path:
    """This session's private folder for uploads and built files (``ckptlab.ui.files``)."""
    holder = _SESSION_DIR.get()
    if holder is None or not holder.path.is_dir():
        holder = _SESSION_DIR.set(files.SessionFolder())
        lifecycle.note_folder(holder.path)       # removed when the visit ends, not only when collected
    return holder.path


def browser_id() -> str:
    """The visiting browser, as its XSRF cookie names it (download links are bound to it)."""
    try:
        cookie = st.context.cookies.get(files.XSRF_COOKIE)
    except Exception:  # noqa: BLE001 - no request behind this run (AppTest, bare mode)
        cookie = None
    return files.browser_id(cookie)


@st.cache_resource(max_entries=24, show_spinner=False)
def server_shared(key: tuple, _build: Callable[[], Any]) -> Any:
    """The process-wide store behind ``shared``; called directly only where no session
    exists (the warm-up at server start fills it for the first visitor). What it keeps
    lives long: ``heap.settle`` takes it out of the garbage collector's full scans."""
    value = _build()
    heap.settle()
    return value


def shared(key: tuple, build: Callable[[], T]) -> T:
    """``build()`` once per ``key`` for the whole server (every session), for read-only
    results keyed by content: an opened checkpoint (path, size, mtime, container), a model
    definition (spec, kwargs), an alignment of those with a recipe. A key that names this
    session's folder (an upload) stays in this session (``cached``). Errors are not cached."""
    if not _session_free(key):
        return cached(key, build)
    return server_shared(key, build)


def cached(key: tuple, build: Callable[[], T]) -> T:
    """``build()`` once per ``key`` in this session (small LRU); errors are not cached."""
    store: OrderedDict = _OPENED.get()
    if key in store:
        store.move_to_end(key)
        return store[key]
    value = build()
    store[key] = value
    while len(store) > _OPENED_MAX:
        store.popitem(last=False)
    return value


def guarded(where: Any, action: Callable[[], T], what: str = "", label: str = "", path: str | Path = "") -> T | None:
    """Run ``action``; a CheckpointError (or any other failure) becomes one ``st.error``
    line in ``where`` and ``None`` is returned, so the rest of the page keeps working."""
    try:
        return action()
    except CheckpointError as exc:
        where.error(text.md(what + error_message(exc, label, path)), icon=icons.ERROR)
    except Exception as exc:  # noqa: BLE001 - the page must never show a traceback
        where.error(text.md(f"{what}{type(exc).__name__}: {error_message(exc, label, path)}"), icon=icons.ERROR)
    return None


def error_message(exc: BaseException, label: str = "", path: str | Path = "") -> str:
    """One line for the page: the session folder never shown, the file named once."""
    holder = _SESSION_DIR.get()
    hide = [holder.path] if holder is not None else []
    return text.error_text(exc, label, hide=hide, path=path)


# -- the recipe and the alignment -----------------------------------------------------
_RECIPE = Slot("recipe")
_PAIR = Slot("_pair_identity")
_ALIGNED = Slot("_ckptlab_alignment")
_EDITOR_VERSION = Slot("_editor_version", 0)


def recipe():
    """This session's recipe (empty at first)."""
    from ckptlab.recipe.model import Recipe

    current = _RECIPE.get()
    return current if current is not None else _RECIPE.set(Recipe())


def editor_version() -> int:
    """Part of the recipe grids' keys: a new version starts them again from the recipe."""
    return _EDITOR_VERSION.get()


def set_recipe(new_recipe: Any, from_editor: bool = False) -> None:
    """Replace the recipe. A change from anywhere but the grids themselves rebuilds the
    grids from the recipe (a new widget key drops their pending edits)."""
    _RECIPE.set(new_recipe)
    if not from_editor:
        _EDITOR_VERSION.bump()


def start_pair(identity: tuple) -> bool:
    """Note a new pair; True when it changed (the page then resets every view:
    ``ckptlab.ui.views.reset``). The recipe stays when one side is the same (the target switched
    between a file, a sample and a model definition, kwargs edited, another source for the same
    target): accepted suggestions and typed rules keep working, and the page names the entries
    that match nothing (``ckptlab.align.stale``). Only a new source *and* a new target (another
    demo pair) start from an empty recipe."""
    previous = _PAIR.get()
    if previous == identity:
        return False
    _PAIR.set(identity)
    if previous is not None and len(previous) == len(identity) == 2 and (
            previous[0] == identity[0] or previous[1] == identity[1]):
        return True
    _RECIPE.clear()
    _EDITOR_VERSION.bump()
    return True


def alignment(source: Any, target: Any, auto: str) -> Any:
    """``ckptlab.align`` for this pair and recipe, recomputed only when one of them changes.

    The cache key is the pair's identity (paths, sizes, mtimes, containers, model specs),
    the recipe's YAML and ``auto``: content, never ``id()`` of objects that may be freed.
    """
    current = recipe()
    key = alignment_cache_key(_PAIR.get(), source, target, current, auto)
    saved = _ALIGNED.get()
    if saved is not None and saved[0] == key:
        return saved[1]
    result = shared(("align",) + key, lambda: align_pair(source, target, current, auto))
    _ALIGNED.set((key, result, {}))
    return result


def file_identity(path: str) -> tuple:
    """A file as content for the caches: path, modification time, size (a changed file is
    opened again)."""
    stat = Path(path).stat() if Path(path).exists() else None
    return ("file", path, stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0)


def open_shared(path: str, container: str | None = None) -> tuple[tuple, Any]:
    """(the file's identity, the opened Checkpoint) through the cache every session shares;
    the page (``inputs``) and the server's warm-up open files with this one key."""
    import ckptlab

    identity = file_identity(path)
    key = identity + (container,)
    if _session_free(key):
        return identity, server_shared(key, lambda: ckptlab.open(path, container))
    return identity, cached(key, lambda: ckptlab.open(path, container))


def aligned_shared(pair: tuple, source: Any, target: Any, current: Any, auto: str) -> Any:
    """The alignment of an opened pair through the shared cache (the warm-up's entry; the
    page goes through ``alignment``, which keys it alike)."""
    key = alignment_cache_key(pair, source, target, current, auto)
    return server_shared(("align",) + key, lambda: align_pair(source, target, current, auto))


def alignment_cache_key(pair: tuple, source: Any, target: Any, current: Any, auto: str) -> tuple:
    """What an alignment depends on, as content: the pair's identity, the containers, the
    recipe's YAML and ``auto`` (the server's warm-up builds the same key)."""
    containers = (getattr(source, "container", None), getattr(target, "container", None))
    return (pair, containers, current.to_yaml(), auto)


def align_pair(source: Any, target: Any, current: Any, auto: str) -> Any:
    """``align`` with the recipe's conversions that fit this source (a recipe kept from
    another pair may hold some that match nothing: ``stale_lines`` names them)."""
    from ckptlab.align.matcher import align
    from ckptlab.align.stale import applicable

    if current.convert:
        current = applicable(current, {k: tuple(source.info(k).shape) for k in source.keys()})
    return align(source, target, current, auto=auto)


def stale_lines(alignment: Any) -> list[str]:
    """The entries of this session's recipe that match nothing in the pair on the page."""
    from ckptlab.align.stale import stale_entries

    current = recipe()
    return derived("stale:" + current.to_yaml(), lambda: stale_entries(current, alignment))


def _session_free(pair: tuple) -> bool:
    """Whether a pair's identity names nothing of this session (no uploaded file): only
    such results may be shared between sessions (outside a session: the server's warm-up)."""
    if _no_session():
        return True
    holder = _SESSION_DIR.get()
    private = str(holder.path) if holder is not None else None
    return not (private and private in repr(pair))


def _no_session() -> bool:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    return get_script_run_ctx(suppress_warning=True) is None


def alignment_key() -> tuple:
    """Identifies the alignment on the page (for results that belong to it)."""
    saved = _ALIGNED.get()
    return saved[0] if saved is not None else ()


def derived(name: str, build: Callable[[], T]) -> T:
    """A value computed from the current alignment, kept until the alignment changes."""
    saved = _ALIGNED.get()
    if saved is None:
        return build()
    store = saved[2]
    if name not in store:
        store[name] = build()
    return store[name]


def panel(draw: Callable[..., Any], *args: Any) -> Any:
    """Draw one panel; if it fails, say so in one line and let the next panels draw."""
    return guarded(st, lambda: draw(*args), what=f"{getattr(draw, '__module__', '').rsplit('.', 1)[-1]}: ")
