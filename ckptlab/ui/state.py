"""Per-session state: the session's private temp folder, opened checkpoints, the recipe.

Two visitors of one server never share anything: uploads and built files live in a temp
folder owned by the session (removed when the session ends), and opened checkpoints are
cached in ``st.session_state``, which Streamlit keeps per session.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st

from ckptlab.errors import CheckpointError
from ckptlab.ui import files, heap, icons, lifecycle, text, work

T = TypeVar("T")
_OPENED = "_ckptlab_opened"
_SESSION_DIR = "_ckptlab_session_dir"
_OPENED_MAX = 6          # a few pairs; each Checkpoint is lazy, so this is cheap


def session_dir() -> Path:
    """This session's private folder for uploads and built files (``ckptlab.ui.files``)."""
    holder = st.session_state.get(_SESSION_DIR)
    if holder is None or not holder.path.is_dir():
        holder = files.SessionFolder()
        st.session_state[_SESSION_DIR] = holder
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
    store: OrderedDict = st.session_state.setdefault(_OPENED, OrderedDict())
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
    holder = st.session_state.get(_SESSION_DIR)
    hide = [holder.path] if holder is not None else []
    return text.error_text(exc, label, hide=hide, path=path)


def get(name: str, default: Any = None) -> Any:
    return st.session_state.get(name, default)


def put(name: str, value: Any) -> None:
    st.session_state[name] = value


# -- the recipe and the alignment -----------------------------------------------------
RECIPE = "recipe"
_PAIR = "_pair_identity"
_ALIGNED = "_ckptlab_alignment"


def recipe():
    """This session's recipe (empty at first)."""
    from ckptlab.recipe.model import Recipe

    if st.session_state.get(RECIPE) is None:
        st.session_state[RECIPE] = Recipe()
    return st.session_state[RECIPE]


EDITOR_VERSION = "_editor_version"
UPLOAD_VERSION = "_recipe_upload_version"     # part of the recipe uploader's key: a new one is empty


def set_recipe(new_recipe: Any, from_editor: bool = False) -> None:
    """Replace the recipe. A change from anywhere but the grids themselves rebuilds the
    grids from the recipe (a new widget key drops their pending edits)."""
    st.session_state[RECIPE] = new_recipe
    if not from_editor:
        st.session_state[EDITOR_VERSION] = st.session_state.get(EDITOR_VERSION, 0) + 1


def start_pair(identity: tuple) -> bool:
    """Note a new pair; True when it changed. The recipe stays when one side is the same
    (the target switched between a file, a sample and a model definition, kwargs edited,
    another source for the same target): accepted suggestions and typed rules keep working,
    and the page names the entries that match nothing (``ckptlab.align.stale``). Only a new
    source *and* a new target (another demo pair) start from an empty recipe."""
    previous = st.session_state.get(_PAIR)
    if previous == identity:
        return False
    st.session_state[_PAIR] = identity
    st.session_state["module_filter"] = None
    st.session_state.pop("_built", None)
    if previous is not None and len(previous) == len(identity) == 2 and (
            previous[0] == identity[0] or previous[1] == identity[1]):
        return True
    st.session_state[RECIPE] = None
    st.session_state[EDITOR_VERSION] = st.session_state.get(EDITOR_VERSION, 0) + 1
    st.session_state[UPLOAD_VERSION] = st.session_state.get(UPLOAD_VERSION, 0) + 1
    st.session_state.pop("_recipe_upload_id", None)
    return True


def alignment(source: Any, target: Any, auto: str) -> Any:
    """``ckptlab.align`` for this pair and recipe, recomputed only when one of them changes.

    The cache key is the pair's identity (paths, sizes, mtimes, containers, model specs),
    the recipe's YAML and ``auto``: content, never ``id()`` of objects that may be freed.
    """
    current = recipe()
    key = alignment_cache_key(st.session_state.get(_PAIR), source, target, current, auto)
    saved = st.session_state.get(_ALIGNED)
    if saved is not None and saved[0] == key:
        return saved[1]
    result = shared(("align",) + key, lambda: work.heavy(align_pair, source, target, current, auto))
    st.session_state[_ALIGNED] = (key, result, {})
    return result


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
    such results may be shared between sessions."""
    holder = st.session_state.get(_SESSION_DIR)
    private = str(holder.path) if holder is not None else None
    return not (private and private in repr(pair))


def alignment_key() -> tuple:
    """Identifies the alignment on the page (for results that belong to it)."""
    saved = st.session_state.get(_ALIGNED)
    return saved[0] if saved is not None else ()


def derived(name: str, build: Callable[[], T]) -> T:
    """A value computed from the current alignment, kept until the alignment changes."""
    saved = st.session_state.get(_ALIGNED)
    if saved is None:
        return build()
    store = saved[2]
    if name not in store:
        store[name] = build()
    return store[name]


def panel(draw: Callable[..., Any], *args: Any) -> Any:
    """Draw one panel; if it fails, say so in one line and let the next panels draw."""
    return guarded(st, lambda: draw(*args), what=f"{getattr(draw, '__module__', '').rsplit('.', 1)[-1]}: ")
