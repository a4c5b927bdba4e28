"""How fast the web app answers and how much memory its server takes, measured in a real
browser (Playwright + Debian chromium).

1. Cold server: a freshly started server, its first visitor: from opening the page to the
   first Accept button being clickable (chromium has opened one Streamlit page before, so
   its own first-launch cost is not counted as the server's); also how long the server took from its start to
   answering its health check (it imports torch and aligns the first demo pair before it
   listens), and the two added (start -> usable, for a visitor who opens it at once).
2. Warm server: a new visitor on a server that served one before, the same measure.
3. A 10,000-row alignment (a 5,000-key pair, every source key under 'module.'): a search
   typed in the key search (from its Enter to the new row count), and a status filter
   change (from removing a chip to the new row count).
4. A rule edit -> the updated table: 'strip_prefix module.' typed into the rule grid, from
   the Enter that commits its pattern to the new counts (10,000 rows -> 5,000 renamed).
   Each repeat uses a pair of new files, so no alignment is served from the cache an
   earlier repeat filled (a visitor's new rule is a new alignment).
5. The server's peak RSS (VmHWM) above its idle RSS while a 2 GB merge is built and
   downloaded through the browser (pair read from server paths).
6. An upload of a 500 MB checkpoint through the page's drop zone: from choosing the file
   to the page showing it opened, and the server's anonymous RSS (RssAnon, sampled every
   50 ms) above its idle value meanwhile (Streamlit's own uploader held the whole file).
7. A shared link reopened: a visitor in a new browser context opens the Share link of a
   state (demo pair, an accepted suggestion, a view): from opening it to the same table.
Targets (issue 12): 1 <= 6 s, 2 <= 2 s, 3 <= 0.3 s, 4 <= 0.5 s.
Run: ``python bench/bench_app.py [--repeats N] [--big-gb 2] [--upload-mb 500] [--steps all|upload,link]``.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e import appdriver as drive  # noqa: E402
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, free_port, start_app, stop_app, wait_idle  # noqa: E402
from tests.e2e.scale import big_pair, many_keys_pair, rss_kb  # noqa: E402

KEYS = 5000                  # target keys: 10,000 table rows before the rule
FIRST_ACCEPT = ".st-key-accept_{fid} button"


def until(page, check, timeout: float = 60.0) -> float:
    """Seconds until ``check(page)`` holds (polled every 10 ms)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            if check(page):
                return time.perf_counter() - start
        except (ValueError, KeyError):
            pass
        page.wait_for_timeout(10)
    raise TimeoutError("the page never showed the expected state")


def accept_ready(page) -> bool:
    button = page.locator("[class*='st-key-accept_'] button").first
    return button.count() > 0 and button.is_visible() and button.is_enabled()


def rows_shown(text: str):
    return lambda page: page.get_by_text(text, exact=True).count() > 0


def time_usable(browser, url: str) -> float:
    """From opening the page to the first Accept button clickable (a new visitor)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    start = time.perf_counter()
    page.goto(url)
    until(page, accept_ready)
    seconds = time.perf_counter() - start
    context.close()
    return seconds


def open_pair(browser, url: str, source: Path, target: Path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(url)
    wait_idle(page)
    for role, path in (("target", target), ("source", source)):
        drive.choose_radio(page, f"{role}_mode", "Server path")
        field = drive.key(page, f"{role}_path").locator("input")
        field.fill(str(path))
        field.press("Enter")
        wait_idle(page)
    return context, page


def time_search(page, text: str, expected: str) -> float:
    field = drive.key(page, "key_search").locator("input")
    field.fill(text)
    start = time.perf_counter()
    field.press("Enter")
    until(page, rows_shown(expected))
    seconds = time.perf_counter() - start
    wait_idle(page)
    return seconds


def time_filter(page, remove: str, expected: str) -> float:
    import re

    button = drive.key(page, "status_filter").locator("button[aria-pressed]").filter(
        has_text=re.compile(rf"^{remove} [\d,]+$"))
    start = time.perf_counter()
    button.click()
    until(page, rows_shown(expected))
    seconds = time.perf_counter() - start
    wait_idle(page)
    return seconds


def time_rule_edit(page) -> float:
    drive.type_rule(page, "strip_prefix", "module.", row=0)
    start = time.perf_counter()
    page.keyboard.press("Enter")
    until(page, lambda p: drive.metrics(p).get("renamed") == KEYS and
          p.get_by_text(f"{KEYS:,} of {KEYS:,} rows", exact=True).count() > 0)
    return time.perf_counter() - start


def big_merge_rss(browser, url: str, pid: int, folder: Path, gigabytes: float) -> tuple[float, float, float]:
    """(idle MB, peak MB, file GB) while a merge of ``gigabytes`` is built and downloaded."""
    source, target = big_pair(folder, int(gigabytes * 2**30))
    idle = rss_kb(pid) / 1024
    context, page = open_pair(browser, url, source, target)
    drive.accept(page, {"strip_prefix": "module."})
    drive.open_view(page, "Download")
    drive.click(page, "build_merged")
    saved = drive.download(page, "download_merged", folder)
    peak = rss_kb(pid, "VmHWM") / 1024
    size = saved.stat().st_size / 2**30
    context.close()
    for file in (source, target, saved):
        file.unlink()
    return idle, peak, size


def rss_anon_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return 0.0


def time_upload(browser, url: str, pid: int, path: Path) -> tuple[float, float, float]:
    """(seconds from choosing the file to the page showing it opened, idle RssAnon MB, peak
    RssAnon MB during the upload) for one upload through the drop zone."""
    import threading

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(600_000)
    page.goto(url)
    wait_idle(page)
    drive.choose_radio(page, "source_mode", "Upload")
    time.sleep(1.0)
    idle = rss_anon_mb(pid)
    peak, done = [idle], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_anon_mb(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    drive.upload_with_chooser(page, "source_upload", path)
    page.get_by_text("tensors, ").first.wait_for()          # the sidebar describes the opened upload
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    context.close()
    return seconds, idle, peak[0]


def time_link(browser, url: str) -> float:
    """A state's Share link opened by a new visitor: from opening it to the same table."""
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    page.goto(url)
    wait_idle(page)
    drive.pick_pair(page, "Silent empty load")
    drive.accept(page, {"add_prefix": "attention_map."})
    expected = drive.table_rows(page)
    drive.open_view(page, "Shape fixes")
    drive.open_view(page, "Alignment")
    link = drive.shared_link(page)
    context.close()
    other = browser.new_context(viewport={"width": 1280, "height": 720})
    page = other.new_page()
    start = time.perf_counter()
    page.goto(link)

    def same(p) -> bool:
        return p.locator(".st-key-alignment_table [id^=glide-cell-]").count() > 0 and \
            drive.table_rows(p, settle=False) == expected

    until(page, same)
    seconds = time.perf_counter() - start
    other.close()
    return seconds


def median(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


@contextlib.contextmanager
def one_button_server(folder: Path):
    """A one-button Streamlit page served the same way: the same measure on it says what
    Streamlit and chromium alone cost on this machine at that moment."""
    import subprocess
    import urllib.request

    script = folder / "one_button.py"
    script.write_text('import streamlit as st\nst.button("Accept", key="accept_baseline")\n')
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
                             "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_app(proc)


def warm_pairs(browser, url: str, baseline_url: str, repeats: int) -> list[tuple[float, float]]:
    """(ckptlab, one-button page) open -> usable, taken in alternating order pair by pair,
    so both see the same load (the ratio is the figure the machine's noise does not inflate)."""
    time_usable(browser, url)                     # each server's first visitor: warms it up
    time_usable(browser, baseline_url)
    pairs = []
    for i in range(repeats):
        if i % 2:
            base = time_usable(browser, baseline_url)
            ours = time_usable(browser, url)
        else:
            ours = time_usable(browser, url)
            base = time_usable(browser, baseline_url)
        pairs.append((ours, base))
    return pairs


def new_steps(browser, folder: Path, steps: set[str], args) -> tuple[list, dict[str, list[float]]]:
    """The upload and shared-link measures, each on a server of its own."""
    from safetensors.torch import save_file

    results: dict[str, list[float]] = {f"upload of {args.upload_mb} MB -> the page shows it opened": [],
                                       "shared link opened in a new context -> the same table": []}
    memory = []
    port = free_port()
    proc = start_app(port)
    url = f"http://127.0.0.1:{port}"
    try:
        if "upload" in steps and args.upload_mb:
            path = folder / "upload_me.safetensors"
            save_file({"body.weight": torch.rand(args.upload_mb * 2**18)}, str(path))
            for _ in range(max(1, args.repeats // 2)):
                seconds, idle, peak = time_upload(browser, url, proc.pid, path)
                results[f"upload of {args.upload_mb} MB -> the page shows it opened"].append(seconds)
                memory.append((args.upload_mb, idle, peak))
        if "link" in steps:
            for _ in range(args.repeats):
                results["shared link opened in a new context -> the same table"].append(time_link(browser, url))
    finally:
        stop_app(proc)
    return memory, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--big-gb", type=float, default=2.0, help="size of the merge for the memory figure (0: skip)")
    parser.add_argument("--upload-mb", type=int, default=500, help="size of the uploaded file (0: skip)")
    parser.add_argument("--steps", default="all", help="'all', or a comma list of: upload, link")
    args = parser.parse_args()
    steps = {"speed", "upload", "link"} if args.steps == "all" else set(args.steps.split(","))
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results: dict[str, list[float]] = {"cold server: start -> health check answered": [],
                                           "cold server: open -> first Accept clickable": [],
                                           "cold server: start -> first Accept clickable": [],
                                           "warm server: open -> first Accept clickable": [],
                                           "search typed on 10,000 rows -> new row count": [],
                                           "status filter changed on 10,000 rows -> new row count": [],
                                           "rule typed in the grid -> updated table (10,000 rows)": []}
        memory = uploaded = None
        warm, baseline = [], []
        with sync_playwright() as playwright, one_button_server(folder) as baseline_url:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            time_usable(browser, baseline_url)     # chromium's own first page (~0.6 s more) is not the server's
            if "upload" in steps or "link" in steps:
                uploaded, more = new_steps(browser, folder, steps, args)
                results.update(more)
            for _ in range(max(1, args.repeats // 2) if "speed" in steps else 0):     # cold: a new server each time
                port = free_port()
                started = time.perf_counter()
                proc = start_app(port, env={"CKPTLAB_ROOTS": str(folder)})
                up = time.perf_counter() - started
                try:
                    usable = time_usable(browser, f"http://127.0.0.1:{port}")
                finally:
                    stop_app(proc)
                results["cold server: start -> health check answered"].append(up)
                results["cold server: open -> first Accept clickable"].append(usable)
                results["cold server: start -> first Accept clickable"].append(up + usable)
            port = free_port()
            proc = start_app(port, env={"CKPTLAB_ROOTS": str(folder)}) if "speed" in steps else None
            url = f"http://127.0.0.1:{port}"
            try:
                if proc is None:
                    raise StopIteration
                warm = warm_pairs(browser, url, baseline_url, args.repeats)
                results["warm server: open -> first Accept clickable"] = [ours for ours, _ in warm]
                baseline = [base for _, base in warm]
                for run in range(args.repeats + 1):           # run 0 warms the 10,000-row path up
                    (folder / f"pair{run}").mkdir()
                    source, target = many_keys_pair(folder / f"pair{run}", KEYS)    # nothing cached for it
                    context, page = open_pair(browser, url, source, target)
                    drive.wait_for_metrics(page, timeout=120, missing=KEYS, unused=KEYS)
                    search = time_search(page, "blocks.42.", "20 of 10,000 rows")
                    back = time_search(page, "", "10,000 of 10,000 rows")
                    filtered = time_filter(page, "unused", f"{KEYS:,} of 10,000 rows")
                    edit = time_rule_edit(page)
                    if run:
                        results["search typed on 10,000 rows -> new row count"] += [search, back]
                        results["status filter changed on 10,000 rows -> new row count"].append(filtered)
                        results["rule typed in the grid -> updated table (10,000 rows)"].append(edit)
                    context.close()
                if args.big_gb:
                    memory = big_merge_rss(browser, url, proc.pid, folder, args.big_gb)
            except StopIteration:
                pass
            finally:
                if proc is not None:
                    stop_app(proc)
            browser.close()

    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__}")
    targets = {"cold server: open": 6.0, "warm": 2.0, "search": 0.3, "status": 0.3, "rule": 0.5}
    for name, values in results.items():
        if not values:
            continue
        target = next((f"; target <= {v:g} s" for k, v in targets.items() if name.startswith(k)), "")
        print(f"{name:58s} {median(values)}{target}")
    if warm:
        print(f"{'same measure, a one-button Streamlit page (context)':58s} {median(baseline)}")
        ratios = [ours / base for ours, base in warm]
        print(f"{'warm server, ckptlab / one-button page, pair by pair':58s} median "
              f"{statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f}, n={len(ratios)})")
    for mb, idle, peak in uploaded or []:
        print(f"server RssAnon while a {mb} MB upload arrives: idle {idle:.0f} MB, peak {peak:.0f} MB "
              f"(+{peak - idle:.0f} MB)")
    if memory:
        idle, peak, size = memory
        print(f"server RSS while building and downloading a {size:.2f} GB merge: idle {idle:.0f} MB, "
              f"peak {peak:.0f} MB (+{peak - idle:.0f} MB)")


if __name__ == "__main__":
    main()
