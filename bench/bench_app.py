"""How fast the web app answers, measured in a real browser (Playwright + Debian chromium).

1. Choosing a 1,000-key pair -> the alignment table and counts are on screen
   (a DDP-style pair: every source key under 'module.'; 2,000 rows before the fix).
   Measured from the Enter that submits the server path to the counts being shown,
   and, separately, for an upload of both files (transfer included).
2. A rule edit -> the updated table: a 'strip_prefix module.' line typed into the rule
   grid, timed from the Enter that commits its pattern to the new counts.
Targets (DESIGN.md): <= 2 s and <= 1 s. Run: ``python bench/bench_app.py [--repeats N]``.
"""
from __future__ import annotations

import argparse
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

KEYS = 1000


def make_pair(folder: Path, keys: int = KEYS) -> tuple[Path, Path]:
    """A transformer-ish target with ``keys`` tensors and its DDP-saved source."""
    names = ("attn.q.weight", "attn.k.weight", "attn.v.weight", "attn.o.weight", "mlp.fc1.weight",
             "mlp.fc2.weight", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias")
    state = {}
    for i in range(keys):
        name = f"blocks.{i // len(names)}.{names[i % len(names)]}"
        state[name] = torch.zeros(16) if "norm" in name else torch.zeros(16, 16)
    target, source = folder / "target_1000.pt", folder / "source_1000_ddp.pt"
    torch.save(state, target)
    torch.save({"module." + k: v for k, v in state.items()}, source)
    return source, target


def until(page, check, timeout: float = 60.0) -> float:
    """Seconds until ``check(page)`` holds (polled every 20 ms)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            if check(page):
                return time.perf_counter() - start
        except (ValueError, KeyError):
            pass
        page.wait_for_timeout(20)
    raise TimeoutError("the page never showed the expected state")


def shows(**expected: int):
    def check(page) -> bool:
        seen = drive.metrics(page)
        return all(seen.get(k) == v for k, v in expected.items()) and page.get_by_test_id("stDataFrame").first.is_visible()
    return check


def time_server_path(page, source: Path, target: Path) -> float:
    drive.choose_radio(page, "target_mode", "Server path")
    drive.key(page, "target_path").locator("input").fill(str(target))
    drive.key(page, "target_path").locator("input").press("Enter")
    wait_idle(page)
    drive.choose_radio(page, "source_mode", "Server path")
    drive.key(page, "source_path").locator("input").fill(str(source))
    drive.key(page, "source_path").locator("input").press("Enter")
    return until(page, shows(missing=KEYS, unused=KEYS))


def time_upload(page, source: Path, target: Path) -> float:
    drive.choose_radio(page, "target_mode", "Upload")
    drive.upload_with_chooser(page, "target_upload", target)
    drive.choose_radio(page, "source_mode", "Upload")
    with page.expect_file_chooser() as chooser:
        drive.key(page, "source_upload").get_by_test_id("stFileUploaderDropzone").click()
    chooser.value.set_files(str(source))
    return until(page, shows(missing=KEYS, unused=KEYS))


def time_rule_edit(page) -> float:
    """Type 'strip_prefix module.' into the grid; time only the final commit."""
    drive.type_rule(page, "strip_prefix", "module.", row=0)
    page.keyboard.press("Enter")
    return until(page, shows(renamed=KEYS, missing=0, unused=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source, target = make_pair(folder)
        port = free_port()
        (ROOT / "test-artifacts").mkdir(exist_ok=True)
        proc = start_app(port, env={"CKPTLAB_ROOTS": str(folder)})
        results: dict[str, list[float]] = {"choose pair (server path)": [], "choose pair (upload both)": [],
                                           "rule edit -> table": []}
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for run in range(args.repeats + 1):        # the first round warms the server up
                    for name, step in (("choose pair (server path)", time_server_path),
                                       ("choose pair (upload both)", time_upload)):
                        context = browser.new_context(viewport={"width": 1600, "height": 1200})
                        page = context.new_page()
                        page.goto(f"http://127.0.0.1:{port}")
                        wait_idle(page)
                        seconds = step(page, source, target)
                        if name.endswith("(server path)"):
                            wait_idle(page)
                            edit = time_rule_edit(page)
                            if run:
                                results["rule edit -> table"].append(edit)
                        if run:
                            results[name].append(seconds)
                        context.close()
                browser.close()
        finally:
            stop_app(proc)

    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__}")
    print(f"pair: {KEYS} target keys, {KEYS} source keys under 'module.' ({2 * KEYS} table rows before the rule)")
    targets = {"choose pair (server path)": 2.0, "choose pair (upload both)": 2.0, "rule edit -> table": 1.0}
    for name, values in results.items():
        print(f"{name:28s} median {statistics.median(values):.2f} s  (min {min(values):.2f}, max {max(values):.2f}, "
              f"n={len(values)}; target <= {targets[name]:.0f} s)")


if __name__ == "__main__":
    main()
