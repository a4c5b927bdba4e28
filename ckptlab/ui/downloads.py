"""Downloads: the merged checkpoint (built with a progress bar into the session's folder
and served from disk, or written straight into a server folder under an output root),
the recipe, the report as CSV/JSON and a standalone PyTorch snippet.

Beside a built file: its counts (statuses, new rows, extras kept) and, when the source's
other entries were to be kept, a warning naming each one the format could not hold and why
(a .safetensors holds text metadata only), so nobody believes an optimizer state went in.

The merged file is never read into the server's memory: the browser gets a link to the
server's file route (``ckptlab.ui.server``), which streams it in chunks.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from ckptlab.errors import CheckpointError
from ckptlab.io.allowed_roots import OUTPUT_ROOTS_ENV, check_output_path, output_roots
from ckptlab.ui import files, icons, kept, state, text

FORMATS = (".safetensors", ".pt")
_BUILT = state.Slot("_built")          # the file built last: key, path, link, report
BROWSER, SERVER_FOLDER = "Browser download", "Write to a server folder"


def show(alignment: Any, ctx: Any = None) -> None:
    from ckptlab import merge

    try:
        plan = merge.plan(alignment)
    except CheckpointError as exc:
        plan = None
        _refused(exc)
    merged_col, other_col = st.columns([3, 2], gap="medium")
    with merged_col:
        _merged(plan, alignment)
    with other_col:
        _others(plan, alignment, ctx)


def _refused(exc: CheckpointError) -> None:
    """Why the merge is refused: the first rows at fault, then the way out on its own line
    (a long list of rows must never cut it off)."""
    faults, ways = getattr(exc, "faults", None), getattr(exc, "ways", None)
    if not faults or not ways:
        st.error(f"Merged checkpoint refused: {text.md(state.error_message(exc))}. Resolve these rows (rules, "
                 "explicit map, conversions, shape fixes) first.", icon=icons.ERROR)
        return
    shown = f"{text.plural(len(faults), 'row')} at fault: " + "; ".join(faults[:3]) + (
        f"; and {len(faults) - 3} more" if len(faults) > 3 else "")
    st.error(f"Merged checkpoint refused: {text.md(shown, 600)}  \n"
             f"{text.md(ways[:1].upper() + ways[1:], 600)}. Resolve these rows (rules, explicit map, conversions, "
             "shape fixes) first.", icon=icons.ERROR)


def _size(plan: Any) -> int:
    return sum(o.info.nbytes for o in plan.outputs()) if plan is not None else 0


def forget_built() -> None:
    """Drop the built file and its link (a new pair: the Download view's reset)."""
    previous = _BUILT.get()
    if previous:
        files.forget(previous.get("url", ""))
        if previous.get("temporary"):
            Path(previous["path"]).unlink(missing_ok=True)
    _BUILT.set(None)


def _merged(plan: Any, alignment: Any) -> None:
    st.markdown("**Merged checkpoint**" + (f" (about {_human(_size(plan))})" if plan is not None else ""))
    suffix = st.radio("Format", FORMATS, horizontal=True, key=kept.remembered("out_format", FORMATS[0]), **kept.STICKY)
    roots = output_roots()
    where = st.radio("Where", [BROWSER, SERVER_FOLDER], horizontal=True, key=kept.remembered("out_where", BROWSER),
                     **kept.STICKY,
                     help="A file too big for a browser download can be written on the server, under a folder "
                          f"the server allows ({OUTPUT_ROOTS_ENV}).") if roots else BROWSER
    extras = _extras_choice(alignment, suffix)
    key = (state.alignment_key(), suffix, where, *extras)
    built = _BUILT.get()
    if built and built["key"] != key:                 # the recipe or format changed: the file is stale
        forget_built()
        built = None
    out: Path | None = None
    if where == SERVER_FOLDER:
        st.caption("Output folders: " + text.md(", ".join(str(r) for r in roots)))
        field = kept.remembered("out_server_path", f"merged{suffix}")    # typed paths survive a view switch
        if kept.value(field) in {f"merged{f}" for f in FORMATS}:     # the untouched default follows the format
            kept.renew(field, f"merged{suffix}")
        typed = st.text_input("File on the server (relative to the first output folder, or absolute)", key=field,
                              **kept.STICKY)
        out = state.guarded(st, lambda: check_output_path(typed, roots))
    elif not roots:
        st.caption(f"Too big for a browser download? Start the server with {OUTPUT_ROOTS_ENV}=<folder> to write "
                   "the merge into a server folder instead.")
    disabled = plan is None or (where == SERVER_FOLDER and out is None)
    if st.button("Build merged checkpoint", key="build_merged", disabled=disabled, type="primary"):
        _build(alignment, key, suffix, out, *extras)
        built = _BUILT.get()
    if built and Path(built["path"]).exists():
        _offer(built, suffix)
    elif plan is not None:
        st.caption("Build the file, then download it. Every target key is written: mapped, adapted, "
                   "or the target's own value.")


def _extras_choice(alignment: Any, suffix: str) -> tuple[bool, bool]:
    """(keep the source's other entries, keep its layout): the CLI's --keep-extras, --nest."""
    beside = alignment.source.beside
    if not beside:
        return False, False
    from ckptlab.io.writers.extras import dotted

    keep = st.checkbox(f"Keep the source's {text.plural(len(beside), 'other entry', 'other entries')}",
                       key=kept.remembered("out_keep_extras", False), **kept.STICKY,
                       help=f"{text.names(dotted(path) for path, _ in beside)} (optimizer state, counters, "
                            "hyper-parameters; like `ckptlab remap --keep-extras`). A .pt keeps them all; a "
                            ".safetensors keeps plain values as metadata and names the rest after the build.")
    nest = False
    if keep and suffix != ".safetensors" and alignment.source.container:
        nest = st.checkbox("Keep the file's layout (--nest)", key=kept.remembered("out_nest", False), **kept.STICKY,
                           help=f"The weights under {text.code(alignment.source.container)} and each entry where "
                                "it was, as in the source file (like `ckptlab remap --nest`).")
    return keep, nest


def _build(alignment: Any, key: tuple, suffix: str, out: Path | None, keep_extras: bool = False,
           nest: bool = False) -> None:
    from ckptlab import merge
    from ckptlab.io import writers as write

    forget_built()
    plan = state.guarded(st, lambda: merge.plan(alignment, keep_extras=keep_extras, nest=nest), what="build: ")
    if plan is None:
        return
    temporary = out is None
    if temporary:
        folder = state.session_dir() / "merged"
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / f"merged{suffix}"
    bar = st.progress(0.0, text="writing...")

    def progress(done: int, total: int, tensor_key: str) -> None:
        bar.progress(min(1.0, done / total) if total else 1.0, text=text.one_line(f"writing {tensor_key}", 120))

    # into a server folder: created exclusively, never replacing a file another visitor just wrote
    written = state.guarded(st, lambda: write.write(plan, out, progress=progress, exclusive=not temporary),
                            what="writing failed: ")
    if written is None:
        bar.empty()
        return
    bar.progress(1.0, text=f"done: {text.plural(len(plan.outputs()), 'tensor')}")
    report = plan.report(outputs=written)
    if temporary:
        report.outputs = [f"merged{suffix}"]          # the name the visitor gets, not the session folder
    built = {"key": key, "path": str(out), "temporary": temporary, "url": "", "report": report,
             "keep_extras": keep_extras, "extras": len(alignment.source.beside)}
    if temporary and files.ROUTE_ACTIVE:
        built["url"] = files.serve(out, f"merged{suffix}", owner=state.session_dir(), browser=state.browser_id())
    _BUILT.set(built)


def _offer(built: dict, suffix: str) -> None:
    path = Path(built["path"])
    size = path.stat().st_size
    if not built["temporary"]:
        st.success(f"Written on the server ({_human(size)}):", icon=icons.OK)
        st.code(str(path), language=None)
        _written(built)
        return
    label = f"Download merged{suffix} ({_human(size)})"
    with st.container(key="download_merged"):
        if built["url"]:
            # our own link (a random token), never a name from the file: served from disk in chunks
            st.markdown(f'<a href="{built["url"]}" download="merged{suffix}" class="ckptlab-download">'
                        f'{label}</a>', unsafe_allow_html=True)
            st.html("<style>a.ckptlab-download{display:inline-block;padding:.4rem .9rem;border-radius:.5rem;"
                    "border:1px solid rgba(49,51,63,.2);text-decoration:none;color:inherit}"
                    "a.ckptlab-download:hover{border-color:#ff4b4b;color:#ff4b4b}</style>")
        else:   # no file route in this process (tests): a deferred button reading the file on click
            st.download_button(label, data=lambda: path.open("rb"), file_name=f"merged{suffix}",
                               mime="application/octet-stream", key="download_merged_button", on_click="ignore")
    _written(built)


def _written(built: dict) -> None:
    """What the built file holds: its counts, and every extra entry it could not keep."""
    report = built.get("report")
    if report is None:
        return
    counts = ", ".join(f"{n:,} {status}" for status, n in report.summary.items() if n and status != "unused")
    unused = report.summary.get("unused", 0)
    parts = [f"{text.plural(len(report.rows), 'tensor')} written ({counts})"]
    if unused:
        parts.append(f"{text.plural(unused, 'source key')} unused")
    if report.new_rows:
        parts.append(f"{text.plural(len(report.new_rows), 'tensor')} with new rows (grown or re-initialised by an "
                     "adapter: train them as new)")
    not_kept = report.extras_not_kept
    if built.get("keep_extras"):
        parts.append(f"other entries: {built['extras'] - len(not_kept):,} of {built['extras']:,} kept")
    elif built.get("extras"):
        parts.append(f"the source's {text.plural(built['extras'], 'other entry', 'other entries')} not kept "
                     "(tick 'Keep the source's other entries')")
    with st.container(key="built_counts"):
        st.caption("; ".join(parts) + ".")
    if not_kept:
        st.warning(f"Not in the file: {text.plural(len(not_kept), 'entry', 'entries')} of the source could not be "
                   "kept:\n\n" + "\n".join(f"- {text.md(n, 300)}" for n in not_kept[:20])
                   + (f"\n\n... and {len(not_kept) - 20} more (in the JSON report)" if len(not_kept) > 20 else ""),
                   icon=icons.WARN)


def _human(size: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def script_path(side: Any, ck: Any) -> str | None:
    """The path the exported script names for a side: the upload's own name for a file this
    session received (its copy here is gone after the visit), else the path given (a sample,
    a server path; relative to the app's folder when under it). None: the file's own path."""
    path = getattr(ck, "path", None)
    if side is None or not path:
        return None
    holder_dir = state.session_dir()
    resolved = Path(path).resolve()
    if resolved.is_relative_to(holder_dir.resolve()):
        return side.label or resolved.name
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved)


def _others(plan: Any, alignment: Any, ctx: Any = None) -> None:
    from ckptlab import merge

    st.markdown("**Recipe, report, code**")
    if plan is None:
        plan = state.guarded(st, lambda: merge.plan(alignment, on_mismatch="keep-target"), what="report: ")
    built, report = _BUILT.get(), None
    if built and built.get("report") is not None:       # the built file's own report (extras, new rows)
        report = lambda: built["report"]                # noqa: E731
    elif plan is not None:
        report = plan.report
    if report is not None:
        # Deferred: a 10,000-row report is built only when its button is clicked.
        a, b = st.columns(2)
        a.download_button("Report (CSV)", data=lambda: report().to_csv(), file_name="ckptlab-report.csv",
                          mime="text/csv", key="download_report_csv", on_click="ignore")
        b.download_button("Report (JSON)", data=lambda: report().to_json(), file_name="ckptlab-report.json",
                          mime="application/json", key="download_report_json", on_click="ignore")
    recipe = alignment.effective_recipe
    st.download_button("Recipe (YAML)", data=recipe.to_yaml(), file_name="recipe.yaml", mime="application/x-yaml",
                       key="download_recipe", on_click="ignore")
    names = (script_path(getattr(ctx, "source", None), alignment.source),
             script_path(getattr(ctx, "target", None), alignment.target))
    snippet = state.guarded(st, lambda: _snippet(alignment, *names), what="snippet: ")
    if report is not None:
        _bundle(alignment, report, snippet or "", names, ctx)
    if snippet:
        st.download_button("PyTorch snippet (remap.py)", data=snippet, file_name="remap.py", mime="text/x-python",
                           key="download_snippet", on_click="ignore")
        with st.expander("The snippet: the same remap in plain PyTorch, no ckptlab needed"):
            st.code(snippet, language="python", height=300)


def _snippet(alignment: Any, source_path: str | None = None, target_path: str | None = None) -> str:
    try:
        from ckptlab.models import codegen
    except ImportError:
        return ""
    return codegen.snippet(alignment, source_path=source_path, target_path=target_path)


def _bundle(alignment: Any, report: Any, snippet: str, names: tuple, ctx: Any) -> None:
    """The hand-over zip (recipe, report, script, README with the shared link), built on click."""
    from ckptlab.ui import bundle, share

    query, left_out = share.params(getattr(ctx, "view", "Download"))
    about = bundle.readme(names[0] or str(alignment.source.path), names[1] or str(alignment.target.path or "model"),
                          alignment.summary, None if left_out else share.link(query))
    recipe_yaml = alignment.effective_recipe.to_yaml()
    st.download_button("Hand-over bundle (recipe, report, script: zip)", key="download_bundle",
                       data=lambda: bundle.bundle(recipe_yaml, report(), snippet, about),
                       file_name=bundle.NAME, mime="application/zip", on_click="ignore")
