"""The drop zone that sends an upload to the server's upload route (``ckptlab.ui.uploads``)
with a progress bar, instead of Streamlit's uploader (which keeps the file in memory).

A Streamlit component (``st.components.v2``: HTML and JavaScript shipped with Streamlit, no
build step, nothing fetched): click to choose a file or drop one; the browser PUTs it to
the input's ticket URL (same origin, so the visitor's cookie binds it) and, once stored,
tells the page to rerun; the page then finds the file by its ticket. The file's name is
shown whole (wrapped, and on hover), never cut: two files that share a prefix look apart.
Names are put in with ``textContent`` (never markup).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from ckptlab.ui import state, uploads

HTML = """<div class="ckz" data-testid="ckptlabDropzone" data-state="idle" tabindex="0" role="button">
<input class="ckz-input" type="file" hidden>
<div class="ckz-label"></div>
<div class="ckz-file"><span class="ckz-name"></span><button class="ckz-remove" type="button"
 title="Remove this file" aria-label="Remove this file">&times;</button></div>
<div class="ckz-bar"><div class="ckz-fill"></div></div>
<div class="ckz-status" aria-live="polite"></div>
</div>"""

CSS = """
.ckz {border: 1px dashed rgba(128,128,128,.6); border-radius: .5rem; padding: .6rem .7rem; cursor: pointer;
      font-family: var(--st-font, sans-serif); font-size: .85rem; color: var(--st-text-color, inherit);
      background: var(--st-secondary-background-color, transparent);}
.ckz.over, .ckz:focus {border-color: var(--st-primary-color, #ff4b4b); outline: none;}
.ckz-label {opacity: .8;}
.ckz-file {display: none; margin-top: .3rem; gap: .4rem; align-items: flex-start;}
.ckz[data-file]:not([data-file=""]) .ckz-file {display: flex;}
.ckz-name {font-weight: 600; overflow-wrap: anywhere; word-break: break-all; flex: 1;}
.ckz-remove {border: none; background: none; cursor: pointer; font-size: 1rem; line-height: 1; padding: 0 .2rem;
             color: inherit;}
.ckz-bar {display: none; height: .35rem; border-radius: .2rem; background: rgba(128,128,128,.25); margin-top: .4rem;}
.ckz[data-state="sending"] .ckz-bar {display: block;}
.ckz-fill {height: 100%; width: 0; border-radius: .2rem; background: var(--st-primary-color, #ff4b4b);}
.ckz-status {margin-top: .25rem; overflow-wrap: anywhere;}
.ckz[data-state="error"] .ckz-status {color: #ff2b2b;}
"""

JS = """
export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const root = parentElement.querySelector(".ckz");
  root.ckz = data;
  root.querySelector(".ckz-label").textContent = data.label;
  root.querySelector(".ckz-name").textContent = data.current;
  root.querySelector(".ckz-name").title = data.current;
  root.dataset.file = data.current;
  const input = root.querySelector(".ckz-input");
  input.accept = data.accept;
  if (root.dataset.ready) return;
  root.dataset.ready = "1";
  const status = (text, state) => {
    root.querySelector(".ckz-status").textContent = text;
    root.dataset.state = state;
  };
  const mb = (n) => (n / 1048576).toLocaleString(undefined, {maximumFractionDigits: 1});
  const send = (file) => {
    if (!file) return;
    const d = root.ckz;
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", d.url + "?name=" + encodeURIComponent(file.name));
    xhr.upload.onprogress = (e) => {
      const total = e.lengthComputable ? e.total : file.size;
      root.querySelector(".ckz-fill").style.width = (100 * e.loaded / Math.max(total, 1)).toFixed(1) + "%";
      status("sending " + file.name + ": " + mb(e.loaded) + " of " + mb(total) + " MB", "sending");
    };
    xhr.onload = () => {
      let reply = {};
      try { reply = JSON.parse(xhr.responseText); } catch (e) {}
      if (xhr.status === 200) {
        status("received " + mb(file.size) + " MB", "done");
        setTriggerValue("uploaded", reply.count);
      } else {
        status(reply.error || ("upload failed (" + xhr.status + ")"), "error");
      }
    };
    xhr.onerror = () => status("upload failed: the connection to the server broke", "error");
    root.querySelector(".ckz-fill").style.width = "0";
    status("sending " + file.name, "sending");
    xhr.send(file);
  };
  root.addEventListener("click", (e) => {
    if (e.target.closest(".ckz-remove") || root.dataset.state === "sending") return;
    input.click();
  });
  root.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") input.click(); });
  input.addEventListener("change", () => { send(input.files[0]); input.value = ""; });
  root.addEventListener("dragenter", (e) => { e.preventDefault(); root.classList.add("over"); });
  root.addEventListener("dragover", (e) => { e.preventDefault(); root.classList.add("over"); });
  root.addEventListener("dragleave", () => root.classList.remove("over"));
  root.addEventListener("drop", (e) => {
    e.preventDefault();
    root.classList.remove("over");
    send(e.dataTransfer && e.dataTransfer.files[0]);
  });
  root.querySelector(".ckz-remove").addEventListener("click", () => {
    const xhr = new XMLHttpRequest();
    xhr.open("DELETE", root.ckz.url);
    xhr.onload = () => { status("", "idle"); setTriggerValue("removed", Date.now()); };
    xhr.send();
  });
}
"""

_TICKETS = state.Slot("_upload_tickets", factory=dict)     # input (source, target) -> its upload ticket
_component: list[Any] = []


def _mount() -> Any:
    if not _component:
        _component.append(st.components.v2.component("ckptlab_dropzone", html=HTML, css=CSS, js=JS))
    return _component[0]


def ticket(role: str) -> str:
    """This session's upload ticket for ``role`` (a new one when the last expired)."""
    tickets = _TICKETS.get()
    token = tickets.get(role)
    if token is None or uploads.lookup(token, state.browser_id()) is None:
        folder = state.session_dir()
        token = tickets[role] = uploads.issue(folder / role, folder, state.browser_id())
    return token


def drop_zone(where: Any, role: str, label: str, types: Sequence[str]) -> tuple[Path | None, str]:
    """Draw ``role``'s drop zone; return the file it received (its path here and the name
    the visitor's browser gave it), or (None, "")."""
    token = ticket(role)
    got = uploads.received(token)
    with where:
        _mount()(key=f"{role}_upload", data={
            "url": uploads.route_path().format(token=token), "label": label,
            "accept": ",".join("." + t for t in types), "current": got.name if got else ""},
            on_uploaded_change=_rerun, on_removed_change=_rerun)
    return (got.path, got.name) if got else (None, "")


def _rerun() -> None:
    """The component's events only rerun the page (the file is read by its ticket)."""
