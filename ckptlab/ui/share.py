"""A lab state as a link, for a team demo: the inputs (demo pair, each side as its sample or
a server path, the auto level), the recipe and the view, in the URL's query
(``st.query_params``). Opening the link in a fresh browser shows the same table.

Uploads are never in a link (the file is this visit's; the link says so and opens that
side's sample), nor are model definitions (code). The recipe travels as base64url of its
compressed JSON, bounded (``MAX_RECIPE_CHARS``); a bigger one is handed over in the
bundle (``ckptlab.ui.bundle``). A link's recipe is read like any recipe file: a bad one
is one line on the page, and decompression is bounded (``MAX_RECIPE_JSON``).
"""
from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from ckptlab.errors import CheckpointError, RecipeError
from ckptlab.ui import icons, inputs, state, text

INPUTS = ("pair", "source", "target", "auto")
RECIPE, VIEW = "recipe", "view"
MAX_RECIPE_CHARS = 6000          # the recipe's share of a link (browsers and proxies take ~8 KB)
MAX_RECIPE_JSON = 256 * 1024     # what a link's recipe may decompress to

_RESTORED = state.Slot("_share_restored", False)
_PENDING = state.Slot("_share_recipe")


def encode_recipe(recipe: Any) -> str:
    """The recipe as URL-safe text: compact JSON, deflated, base64url without padding."""
    raw = json.dumps(recipe.to_dict(), separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")


def decode_recipe(packed: str) -> Any:
    """A link's recipe back (``RecipeError``, one line, when it is not one)."""
    from ckptlab.recipe.model import Recipe

    if len(packed) > MAX_RECIPE_CHARS:
        raise RecipeError(f"the link's recipe is {len(packed):,} characters (at most {MAX_RECIPE_CHARS:,})")
    try:
        data = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4))
        inflate = zlib.decompressobj()
        raw = inflate.decompress(data, MAX_RECIPE_JSON)
        if inflate.unconsumed_tail:
            raise RecipeError(f"the link's recipe is over {MAX_RECIPE_JSON // 1024} KB once unpacked")
        return Recipe.from_dict(json.loads(raw))
    except (binascii.Error, zlib.error, ValueError, UnicodeDecodeError) as exc:
        raise RecipeError(f"the link's recipe cannot be read ({type(exc).__name__})") from None


def params(view: str) -> tuple[dict[str, str], list[str]]:
    """The query a link carries for this state, and what it had to leave out (one line each)."""
    query = inputs.shared_inputs()
    left_out = [f"the {role} (an upload or a model definition: the link opens the demo pair's {role} instead; "
                "put the file under an allowed server folder and pick it by Server path to share it)"
                for role in ("source", "target") if role not in query]
    packed = encode_recipe(state.recipe())
    if len(packed) > MAX_RECIPE_CHARS:
        left_out.append(f"the recipe ({len(packed):,} characters packed, more than a link holds: "
                        "hand over the bundle from the Download view)")
    elif state.recipe().to_dict():
        query[RECIPE] = packed
    query[VIEW] = view
    return query, left_out


def link(query: dict[str, str]) -> str:
    """The page's address with ``query`` (relative when the page's address is unknown)."""
    try:
        base = str(st.context.url or "")
    except Exception:  # noqa: BLE001 - no request behind this run (AppTest)
        base = ""
    return base.split("?", 1)[0].split("#", 1)[0] + "?" + urlencode(query)


def restore() -> str | None:
    """Once per visit, before the sidebar is drawn: set the inputs and (once the pair is
    open, ``apply_recipe``) the recipe a link carries, clear the query, and return the view
    it names (the page opens it)."""
    if _RESTORED.get():
        return None
    _RESTORED.set(True)
    given = {k: st.query_params.get(k) for k in (*INPUTS, RECIPE, VIEW) if k in st.query_params}
    if not given:
        return None
    inputs.restore_inputs({k: v for k, v in given.items() if k in INPUTS})
    if given.get(RECIPE):
        try:
            _PENDING.set(decode_recipe(given[RECIPE]))
        except CheckpointError as exc:
            st.warning(text.md(f"Shared link: {exc}"), icon=icons.WARN)
    for key in given:
        del st.query_params[key]
    return given.get(VIEW)


def apply_recipe() -> None:
    """The link's recipe, once its pair is open (opening a pair starts an empty recipe)."""
    pending = _PENDING.get()
    if pending is not None:
        _PENDING.clear()
        state.set_recipe(pending)


def offer(ctx: Any, view: str) -> None:
    """A 'Share' button: the link of this state, and what it leaves out."""
    with st.popover("Share", icon=":material/share:", width="stretch", key="share"):
        query, left_out = params(view)
        st.markdown("**A link to this lab state** (the inputs, the recipe and the view): "
                    "whoever opens it sees the same table.")
        st.code(link(query), language=None, wrap_lines=True)
        for line in left_out:
            st.warning(text.md("Not in the link: " + line, 600), icon=icons.WARN)
