"""Sidebar: pick the source and the target (sample, upload, server path, model definition).

Each side ends as a ``Side``: the opened Checkpoint (or None with the error shown right
where the input was given) and, when known, the model definition that made it.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

from ckptlab.io.checkpoint import Checkpoint
from ckptlab.io.allowed_roots import allowed_roots, check_path
from ckptlab.io.model_target import ALLOW_CODE_ENV, ModelAllowlist, code_allowed, model_target, parse_kwargs
from ckptlab.ui import dropzone, files, state, text
from ckptlab.ui.samples import PAIRS, SamplePair

SAMPLE, UPLOAD, PATH, MODEL = "Sample", "Upload", "Server path", "Model definition"
UPLOAD_TYPES = ["pt", "pth", "bin", "ckpt", "safetensors", "tar", "pkl", "pickle"]
_START_DIR = Path.cwd()      # the folder the app started in (an allowed root)
AUTO_CHOICES = ("none", "high", "all")
AUTO_DEFAULT = AUTO_CHOICES[0]


@dataclass
class Side:
    role: str
    label: str = ""
    ckpt: Checkpoint | None = None
    model: str | None = None           # model definition that made it, when known
    kwargs: dict[str, Any] = field(default_factory=dict)
    identity: tuple = ()


def sidebar() -> tuple[SamplePair, Side, Side]:
    """Draw the sidebar; return the chosen demo pair and both sides."""
    bar = st.sidebar
    bar.header("Checkpoints")
    titles = [p.title for p in PAIRS]
    title = bar.selectbox("Demo pair (used by 'Sample')", titles, key="pair")
    pair = PAIRS[titles.index(title)]
    bar.caption("Upload limit 2 GB: for bigger files use **Server path** "
                f"(allowed folders: {', '.join(str(r) for r in allowed_roots(_START_DIR))}).")
    source = _side(bar, "source", pair)
    target = _side(bar, "target", pair)
    bar.divider()
    bar.selectbox("Apply suggestions automatically", list(AUTO_CHOICES), key="auto",
                  help="'high' applies only sure fixes (a prefix explaining many keys); 'all' also applies "
                       "guesses. With 'none' you accept each suggestion yourself.")
    return pair, source, target


def _side(bar: Any, role: str, pair: SamplePair) -> Side:
    bar.subheader(role.capitalize())
    modes = [SAMPLE, UPLOAD, PATH] + ([MODEL] if role == "target" else [])
    mode = bar.radio(f"{role} from", modes, key=f"{role}_mode", horizontal=True, label_visibility="collapsed")
    slot = bar.container()
    sample = getattr(pair, role)
    side = Side(role)
    if mode == SAMPLE:
        side.model, side.kwargs = sample.model, dict(sample.kwargs)
        return _open_file(slot, side, sample.path, label=sample.file)
    if mode == UPLOAD and files.ROUTE_ACTIVE:       # streamed to disk by the server's upload route
        path, name = dropzone.drop_zone(slot, role, f"Drop the {role} checkpoint here, or click to choose it",
                                        UPLOAD_TYPES)
        return _open_file(slot, side, str(path), label=name) if path else side
    if mode == UPLOAD:
        uploaded = slot.file_uploader(f"Drop the {role} checkpoint", type=UPLOAD_TYPES, key=f"{role}_upload")
        config = _config_upload(slot) if role == "target" else None
        path = _keep_upload(role, uploaded)
        if path is None:
            if config is not None:
                return _open_config_model(slot, side, config)
            slot.info(f"Drop a {role} checkpoint above" + (", or its config.json" if role == "target" else "") + ".")
            return side
        side = _open_file(slot, side, str(path), label=uploaded.name)
        if config is not None and side.ckpt is not None:
            _attach_config_model(slot, side, config)
        return side
    if mode == PATH:
        text = slot.text_input(f"{role} path on the server", key=f"{role}_path",
                               placeholder="sample_ckpts/convnet_rgb.pt")
        if not text.strip():
            return side
        resolved = state.guarded(slot, lambda: allowed_file(text, allowed_roots(_START_DIR)))
        if resolved is None:
            return side
        return _open_file(slot, side, str(resolved), label=text)
    return _open_model(slot, side, sample)


NOT_ALLOWED = "not an allowed file (a checkpoint under the allowed folders above)"


def allowed_file(typed: str, roots: list[Path]) -> Path:
    """The checkpoint a typed server path names, or one and the same line for anything else:
    outside the roots, missing, unreadable, a folder or a file that is no checkpoint. The
    page is no oracle for which files exist, and shows no byte of one that is not a
    checkpoint (the reader's own message quotes its first bytes)."""
    from ckptlab.errors import CheckpointError, PathNotAllowedError
    from ckptlab.io.formats.sniff import index_in, sniff

    try:
        resolved = check_path(typed, roots)
        probe = index_in(resolved) if resolved.is_dir() and not (resolved / ".metadata").is_file() else resolved
        if probe is None or not os.access(probe, os.R_OK) or not (probe.is_file() or probe.is_dir()):
            raise PathNotAllowedError(NOT_ALLOWED)
        sniff(probe)
    except (CheckpointError, OSError, ValueError):
        raise PathNotAllowedError(f"{text.one_line(typed, 200)}: {NOT_ALLOWED}") from None
    return resolved


def _open_file(slot: Any, side: Side, path: str, label: str) -> Side:
    """Open ``path`` with the container the visitor picked (if any) and show the choice."""
    base = file_identity(path)
    choice_key = f"{side.role}_container_{abs(hash(base))}"
    container = state.widget_value(choice_key)
    ck = state.guarded(slot, lambda: state.open_shared(path, container)[1], label=label, path=path)
    side.label, side.identity = label, base
    if ck is None:
        return side
    side.ckpt = ck
    _container_picker(slot, ck, choice_key)
    slot.text(described(base + (container,), ck))
    return side


file_identity = state.file_identity


def natural_key(name: str | None) -> tuple:
    """Sort key reading digit runs as numbers: ``state.4`` before ``state.10``; top level first."""
    parts = re.split(r"(\d+)", name or "")
    return (name is not None and name != "", [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts])


def _container_picker(slot: Any, ck: Checkpoint, choice_key: str) -> None:
    options = sorted([c.path for c in ck.candidates] or [ck.container], key=natural_key)
    if len(options) < 2:
        return
    sizes = {c.path: c for c in ck.candidates}
    slot.selectbox("container (where the tensors sit)", options, index=options.index(ck.container),
                   key=choice_key,
                   format_func=lambda p: f"{p or '(top level)'}: {sizes[p].tensors} tensors" if p in sizes else p)


BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def parameter_count(ck: Checkpoint) -> tuple[int, int]:
    """(values in parameters, values in buffers). A model definition says which tensors are
    buffers; for a file, BatchNorm's well-known buffer names (and integer tensors) count as
    buffers, since a state_dict does not mark them."""
    model = getattr(ck, "meta_model", None)
    if model is not None:
        params = sum(p.numel() for p in model.parameters())
        return params, max(0, sum(b.numel() for b in model.buffers()))
    buffers = 0
    for key in ck.keys():
        info = ck.info(key)
        if key.rsplit(".", 1)[-1] in BUFFER_SUFFIXES or not (info.dtype.is_floating_point or info.dtype.is_complex):
            buffers += info.numel
    return ck.total_params - buffers, buffers


def describe(ck: Checkpoint) -> str:
    """One plain-text line (names from the file are never markup): tensors, container,
    parameters without buffers, format, what else the file holds."""
    where = f" under '{ck.container}'" if ck.container else ""
    params, buffers = parameter_count(ck)
    line = f"{len(ck):,} tensors{where}, {params:,} parameters" + (f" (+{buffers:,} buffer values)" if buffers else "")
    line += f", {ck.format}"
    if ck.other:
        line += "; also in the file: " + ", ".join(o.key for o in ck.other[:6]) + ("..." if len(ck.other) > 6 else "")
    if ck.placeholders:
        line += "; stood in for classes: " + ", ".join(ck.placeholders)
    return text.one_line(line, 600)


def described(identity: tuple, ck: Checkpoint) -> str:
    """``describe`` once per opened checkpoint (it visits every key: ~0.1 s a run for two
    5,000-key files, and every run draws the sidebar)."""
    return state.shared(("describe",) + identity, lambda: describe(ck))


UPLOADED = {role: state.Slot(f"_{role}_upload_file") for role in ("source", "target", "target_code",
                                                                 "target_config")}


def _keep_upload(role: str, uploaded: Any) -> Path | None:
    """Write the upload into this session's folder; delete the file it replaces."""
    slot = UPLOADED[role]         # (Streamlit's file id, its copy on disk)
    previous = slot.get()
    if uploaded is None:
        if previous:
            Path(previous[1]).unlink(missing_ok=True)
            slot.set(None)
        return None
    if previous and previous[0] == uploaded.file_id:
        return Path(previous[1])
    if previous:
        Path(previous[1]).unlink(missing_ok=True)
    folder = state.session_dir() / role
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / safe_name(uploaded.name)
    copy_upload(uploaded, path)
    slot.set((uploaded.file_id, str(path)))
    return path


CHUNK = 16 * 2**20


def copy_upload(uploaded: Any, path: Path, chunk: int = CHUNK) -> None:
    """Copy an upload into the session folder in chunks, with a progress bar for big ones
    (through a temp name: a half-copied file is never opened)."""
    size = getattr(uploaded, "size", 0) or 0
    bar = st.sidebar.progress(0.0, text=f"saving {safe_name(uploaded.name)}") if size > 8 * chunk else None
    part = path.with_name(path.name + ".part")
    uploaded.seek(0)
    done = 0
    with open(part, "wb") as out:
        while block := uploaded.read(chunk):
            out.write(block)
            done += len(block)
            if bar is not None:
                bar.progress(min(1.0, done / size), text=f"saving {safe_name(uploaded.name)}: {done >> 20:,} MB")
    part.replace(path)
    if bar is not None:
        bar.empty()


def safe_name(name: str) -> str:
    """A file name without folders or odd characters (uploads name their own files)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).name).lstrip(".")
    return cleaned or "upload.bin"


def _open_model(slot: Any, side: Side, sample: Any) -> Side:
    spec = slot.text_input("model (package.module:callable)", value=sample.model, key="target_spec")
    kwargs_text = slot.text_input("kwargs (JSON)", value=_json(sample.kwargs), key="target_kwargs")
    if code_allowed(None):
        code = slot.file_uploader("or a model .py file (runs its code)", type=["py"], key="target_code")
        name = slot.text_input("callable in that file", value="Model", key="target_code_callable")
        path = _keep_upload("target_code", code)
        if path is not None:
            spec = f"{path}:{name}"
    else:
        slot.caption(f"A .py model file runs code, so uploading one is off. Start the app with "
                     f"`{ALLOW_CODE_ENV}=1` to allow it.")
    kwargs = state.guarded(slot, lambda: parse_kwargs(kwargs_text))
    if kwargs is None or not spec.strip():
        return side
    key = ("model", spec, _json(kwargs))
    ck = state.guarded(slot, lambda: state.shared(key, lambda: model_target(spec, kwargs, allow=model_allowlist())))
    side.label, side.identity, side.model, side.kwargs = spec, key, spec, kwargs
    if ck is not None:
        side.ckpt = ck
        slot.text(described(key, ck))
    return side


def model_allowlist() -> ModelAllowlist:
    """What a visitor may build: a spec is code, and here it comes from the page
    (``CKPTLAB_MODEL_ALLOW`` / ``ckptlab app --allow-model`` widen it; config.json files are
    read only under the allowed folders, and this visitor's own uploaded one, whose content
    is checked like typed kwargs)."""
    roots = tuple(allowed_roots(_START_DIR))
    uploaded = UPLOADED[CONFIG_ROLE].get()
    if uploaded:
        roots += (Path(uploaded[1]).parent,)
    return ModelAllowlist.from_env(config_roots=roots)


# -- a transformers model target from an uploaded config.json --------------------------------
CONFIG_ROLE = "target_config"
CLASS_PICKER = "target_config_class"


def _config_upload(slot: Any) -> Path | None:
    """The optional config.json beside the target checkpoint (or alone): it makes the target a
    transformers model, which Verify and Fine-tune need; saved in the session's folder."""
    uploaded = slot.file_uploader("its config.json (optional): the target as a transformers model, for Verify "
                                  "and Fine-tune", type=["json"], key=CONFIG_ROLE)
    return _keep_upload(CONFIG_ROLE, uploaded)


def _config_model(slot: Any, config: Path) -> tuple[str, dict[str, Any]] | None:
    """The spec and kwargs the config gives: the class its ``architectures`` names, else one
    picked from the catalogue's known models (or ``AutoModel``)."""
    from ckptlab.io.model_target import AUTO_MODEL, config_model_class, read_config, transformers_target
    from ckptlab.recipe.known import model_classes

    data = state.guarded(slot, lambda: read_config(config), label="config.json", path=config)
    if data is None:
        return None
    name = state.guarded(slot, lambda: config_model_class(data), label="config.json")
    if name is None:
        name = slot.selectbox("model class (the config.json names none)", [AUTO_MODEL, *model_classes()],
                              key=CLASS_PICKER, help="The catalogue's known models; AutoModel builds the bare model "
                                                     f"of its model_type ({data.get('model_type')}).")
    return state.guarded(slot, lambda: transformers_target(config, name), label="config.json", path=config)


def _open_config_model(slot: Any, side: Side, config: Path) -> Side:
    """A config.json alone: the target is the model it describes, built on the meta device."""
    made = _config_model(slot, config)
    if made is None:
        return side
    spec, kwargs = made
    key = ("model", spec, _json(kwargs), file_identity(str(config)))
    ck = state.guarded(slot, lambda: state.shared(key, lambda: model_target(spec, kwargs, allow=model_allowlist())),
                       label="config.json", path=config)
    side.label, side.identity, side.model, side.kwargs = f"{spec} (config.json)", key, spec, kwargs
    if ck is not None:
        side.ckpt = ck
        slot.text(described(key, ck))
    return side


def _attach_config_model(slot: Any, side: Side, config: Path) -> None:
    """A checkpoint with its config.json: the file stays the target (its values fill what the
    source does not feed), the model it belongs to serves Verify and Fine-tune."""
    made = _config_model(slot, config)
    if made is None:
        return
    side.model, side.kwargs = made
    slot.caption(f"Model for Verify and Fine-tune: {text.code(side.model)}, from config.json.")


def _json(value: dict) -> str:
    import json

    return json.dumps(value, sort_keys=True)


# -- what the page and a shared link read of the inputs (their widget keys live here) --
def using_sample() -> bool:
    return state.widget_value("source_mode", SAMPLE) == SAMPLE


def auto() -> str:
    """The chosen 'Apply suggestions automatically' level."""
    return state.widget_value("auto", AUTO_DEFAULT)


def shared_inputs() -> dict[str, str]:
    """The inputs as a shared link carries them: the demo pair, each side as ``sample`` or
    ``path:<typed path>``, the auto level. A side a link cannot carry (an upload, a model
    definition) is left out (the link then opens that side's sample)."""
    titles = [p.title for p in PAIRS]
    title = state.widget_value("pair", titles[0])
    out = {"pair": str(titles.index(title) if title in titles else 0), "auto": auto()}
    for role in ("source", "target"):
        mode = state.widget_value(f"{role}_mode", SAMPLE)
        typed = (state.widget_value(f"{role}_path") or "").strip()
        if mode == SAMPLE:
            out[role] = "sample"
        elif mode == PATH and typed:
            out[role] = f"path:{typed}"
    return out


def restore_inputs(shared: dict[str, str]) -> None:
    """Set the inputs' widgets from a shared link (before the sidebar is drawn)."""
    index = int(shared["pair"]) if shared.get("pair", "").isdigit() else 0
    state.set_widget("pair", PAIRS[min(index, len(PAIRS) - 1)].title)
    if shared.get("auto") in AUTO_CHOICES:
        state.set_widget("auto", shared["auto"])
    for role in ("source", "target"):
        value = shared.get(role, "sample")
        if value.startswith("path:") and value[5:].strip():
            state.set_widget(f"{role}_mode", PATH)
            state.set_widget(f"{role}_path", value[5:])
        else:
            state.set_widget(f"{role}_mode", SAMPLE)
