"""One ckptlab server, N visitors in real browsers, one hostile visitor (issue 18): do the
others still get a usable page, and does the server give back its memory and disk?

One server (``streamlit run app.py``, as tests/e2e start it, ``CKPTLAB_SESSION_GRACE=2``),
warmed by one visit. For each N (1, 4, 8), in rounds alternating their order:

- **quiet**: N visitors (one chromium each, driven from its own thread) open the page at once;
  each visit is timed from ``goto`` to a usable page (script run finished, no skeleton, the
  counts shown and the alignment table drawn), then its browser context is closed;
- **hostile**: one more visitor, who keeps a page open with a source upload whose keys are
  long runs of ``a`` ending in ``b``, first uploads a file with a 1 MB key as the target (it
  must be refused by ``MAX_KEY_CHARS``) and a YAML recipe with nested merge keys (refused by
  ``MAX_RECIPE_NODES``), then a recipe with a catastrophically backtracking rule
  (``(a+)+$``; each of its 300 keys holds 150-249 ``a``s and takes ~0.05 s, under the
  per-key bound ``MAX_MATCH_SECONDS``, so the whole rename runs: the most work the bounds let
  one recipe cost, up to ``MAX_RENAME_SECONDS``). Once that upload is sent, the N visitors
  open the page as in a quiet round, while the hostile rename runs.

A thread samples the server every 0.25 s: RSS and RssAnon (/proc), CPU seconds, its scratch
folder under /tmp (``ckptlab.ui.files.server_dir``: bytes and session folders), and another
times its health endpoint (the event loop answering). After each N, every context is closed
(the hostile one too); the same figures are taken once the visits have been freed (grace
2 s + the janitor's 5 s tick + 3 s).

The figure that the shared machine's noise does not inflate is the ratio hostile / quiet of
the median usable time at the same N, from rounds interleaved in one run.

``--baseline REV`` also serves that git revision's tree (``git archive``) from a second server,
its rounds interleaved with this tree's in the same run (before/after a change).

Run: ``python bench/bench_server.py [--visitors 1,4,8] [--rounds 3] [--hostile-keys 300]
[--baseline REV] [--csv samples.csv]``; ``--quick`` is a smoke run (2 visitors, one round, 60
hostile keys).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import glob
import itertools
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e import appdriver as drive
from tests.e2e.conftest import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    free_port,
    start_app,
    stop_app,
    wait_idle,
)

GRACE_S = 2                       # CKPTLAB_SESSION_GRACE for the bench's server
AFTER_S = GRACE_S + 5 + 3         # grace + the janitor's tick (lifecycle.TICK_S) + slack
BACKTRACKING = "(a+)+$"
NESTED_MERGES = "x0: &x0 {a: 1, b: 2}\n" + "".join(                     # tests/security/test_bounded.py
    f"x{i}: &x{i} {{<<: [*x{i - 1}, *x{i - 1}], c{i}: *x{i - 1}}}\n" for i in range(1, 12))
USABLE_JS = """() => {
  const app = document.querySelector("[data-testid='stApp']");
  return !!app && app.getAttribute('data-test-script-state') === 'notRunning'
    && document.querySelectorAll("[data-testid='stSkeleton']").length === 0
    && document.querySelectorAll("[data-testid='stMetric']").length > 0
    && [...document.querySelectorAll("[data-testid='stDataFrame']")]      // the table, not an editor's grid
         .some(d => !d.closest("[class*='_grid']") && !!d.querySelector('canvas'));
}"""


# -- the hostile visitor's files -------------------------------------------------------------
def hostile_files(folder: Path, keys: int) -> dict[str, Path]:
    """The source whose keys feed the backtracking rule, the 1 MB key, the nested merges."""
    out = {"source": folder / "aaaa.pt", "long_key": folder / "long_key.pt", "merges": folder / "merges.yaml"}
    torch.save({f"x{i}." + "a" * (150 + i % 100) + "b": torch.ones(1) for i in range(keys)}, out["source"])
    torch.save({"k" * 2**20: torch.ones(1), "w": torch.ones(1)}, out["long_key"])
    out["merges"].write_text(NESTED_MERGES)
    return out


def backtracking_recipe(folder: Path, round_no: int) -> tuple[Path, str]:
    """A new recipe each round (a new alignment, nothing cached): its marker is in the YAML."""
    marker = f"hostile{round_no}x"
    path = folder / f"r{round_no}.json"
    path.write_text(json.dumps({"rules": [{"replace": {"pattern": BACKTRACKING, "with": marker}}]}))
    return path, marker


# -- browsers, one per thread ----------------------------------------------------------------
class Browser:
    """A chromium driven from its own thread (Playwright's sync API belongs to one thread):
    ``submit(fn, *args)`` runs ``fn(browser, *args)`` there and returns a Future."""

    def __init__(self) -> None:
        self.jobs: queue.Queue = queue.Queue()
        self.ready = cf.Future()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            self.ready.set_result(True)
            while (job := self.jobs.get()) is not None:
                fn, args, future = job
                try:
                    future.set_result(fn(browser, *args))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    future.set_exception(exc)
            browser.close()

    def submit(self, fn, *args) -> cf.Future:
        future: cf.Future = cf.Future()
        self.jobs.put((fn, args, future))
        return future

    def stop(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=30)


def visit(browser, url: str) -> tuple[float, float, float]:
    """One new visitor: (start, end, seconds) from ``goto`` to a usable page."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        start = time.monotonic()
        page.goto(url, timeout=300_000)
        page.wait_for_function(USABLE_JS, timeout=300_000, polling=20)
        end = time.monotonic()
    finally:
        context.close()
    return start, end, end - start


# -- the hostile visitor ---------------------------------------------------------------------
class Hostile:
    """The hostile visitor's page lives in its Browser's thread; every method runs there."""

    def __init__(self, folder: Path, hostile: dict[str, Path]) -> None:
        self.folder, self.files = folder, hostile
        self.context = self.page = None

    def open(self, browser, url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = self.page = self.context.new_page()
        page.set_default_timeout(300_000)
        page.goto(url)
        wait_idle(page, timeout=300_000)
        drive.choose_radio(page, "source_mode", "Upload")
        self._upload("source_upload", self.files["source"])
        page.wait_for_function(USABLE_JS, timeout=300_000)
        drive.open_editor(page, "Recipe")

    def _upload(self, widget_prefix: str, path: Path) -> None:
        self.page.locator(f"[class*='st-key-{widget_prefix}'] input[type=file]").set_input_files(str(path))

    def _refused(self, needle: str) -> float:
        start = time.monotonic()
        self.page.get_by_text(needle, exact=False).first.wait_for(timeout=300_000)
        return time.monotonic() - start

    def attack(self, _browser, round_no: int, sent: threading.Event) -> dict[str, float]:
        """The 1 MB key, the nested merges, then the backtracking recipe: ``sent`` is set once
        its upload is on its way; returns seconds to each refusal and the rename's run."""
        page, out = self.page, {}
        drive.choose_radio(page, "target_mode", "Upload")
        start = time.monotonic()
        self._upload("target_upload", self.files["long_key"])
        self._refused("MAX_KEY_CHARS")
        out["long key refused"] = time.monotonic() - start
        drive.choose_radio(page, "target_mode", "Sample")
        page.wait_for_function(USABLE_JS, timeout=300_000)
        drive.open_editor(page, "Recipe")
        start = time.monotonic()
        self._upload("recipe_upload_", self.files["merges"])
        self._refused("MAX_RECIPE_NODES")
        out["nested merges refused"] = time.monotonic() - start
        path, marker = backtracking_recipe(self.folder, round_no)
        out["rename start"] = time.monotonic()
        self._upload("recipe_upload_", path)
        sent.set()
        page.wait_for_function("m => document.body.innerText.includes(m) || "
                               "document.body.innerText.includes('took more than')", arg=marker,
                               timeout=600_000, polling=50)
        out["rename end"] = time.monotonic()
        out["rename refused"] = float("took more than" in page.inner_text("body"))
        wait_idle(page, timeout=300_000)
        return out

    def close(self, _browser) -> None:
        if self.context is not None:
            self.context.close()
        self.context = self.page = None


# -- the server, sampled ---------------------------------------------------------------------
@dataclass
class Sample:
    t: float
    phase: str
    rss_mb: float
    anon_mb: float
    cpu_s: float
    scratch_mb: float
    sessions: int


@dataclass
class Monitor:
    pid: int
    phase: str = "idle"
    samples: list[Sample] = field(default_factory=list)
    health: list[tuple[float, str, float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self, url: str) -> None:
        threading.Thread(target=self._sample, daemon=True).start()
        threading.Thread(target=self._health, args=(url,), daemon=True).start()

    def status(self) -> dict[str, float]:
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon"):
                out[name] = int(value.split()[0]) / 1024
        return out

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def scratch(self) -> tuple[float, int]:
        total, sessions = 0, 0
        for folder in glob.glob(os.path.join(tempfile.gettempdir(), f"ckptlab-server-{self.pid}-*")):
            for where, dirs, names in os.walk(folder):
                sessions += sum(d.startswith("session-") for d in dirs)
                for name in names:
                    try:
                        total += os.stat(os.path.join(where, name)).st_blocks * 512
                    except OSError:
                        pass
        return total / 2**20, sessions

    def take(self) -> Sample:
        mem, (disk, sessions) = self.status(), self.scratch()
        return Sample(time.monotonic(), self.phase, mem["VmRSS"], mem["RssAnon"], self.cpu(), disk, sessions)

    def _sample(self) -> None:
        while not self.stop.is_set():
            try:
                self.samples.append(self.take())
            except (OSError, KeyError):
                return
            time.sleep(0.25)

    def _health(self, url: str) -> None:
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=120).read()
            except OSError:
                pass
            self.health.append((start, self.phase, time.monotonic() - start))
            time.sleep(0.25)

    def of(self, phase: str) -> list[Sample]:
        return [s for s in self.samples if s.phase == phase]

    def cpu_share(self, phase: str) -> float:
        """The server's CPU use in a phase, in cores (1.0 = one core busy)."""
        spans = self.of(phase)
        busy = wall = 0.0
        for a, b in itertools.pairwise(spans):
            if b.t - a.t < 1.0:                    # consecutive samples of one stretch of the phase
                busy, wall = busy + b.cpu_s - a.cpu_s, wall + b.t - a.t
        return busy / wall if wall else 0.0


# -- one N -----------------------------------------------------------------------------------
@dataclass
class Server:
    label: str
    url: str
    proc: subprocess.Popen
    monitor: Monitor
    hostile: Hostile


@dataclass
class Block:
    label: str
    visitors: int
    quiet: list[float] = field(default_factory=list)
    hostile: list[float] = field(default_factory=list)
    overlapped: int = 0                 # hostile-round visits that ended while the rename still ran
    attacks: list[dict] = field(default_factory=list)
    before: Sample | None = None
    after: Sample | None = None
    freed_s: float = float("nan")       # from the last context closed to no session folder left


def run_visits(browsers: list[Browser], url: str, n: int) -> list[tuple[float, float, float]]:
    futures = [b.submit(visit, url) for b in browsers[:n]]
    return [f.result(timeout=900) for f in futures]


def hostile_round(server: Server, block: Block, browsers: list[Browser], hostile_browser: Browser,
                  round_no: int) -> None:
    sent = threading.Event()
    attack = hostile_browser.submit(server.hostile.attack, round_no, sent)
    while not sent.wait(0.1):
        if attack.done():
            attack.result()                    # raises what went wrong
    time.sleep(0.5)                            # the upload reaches the server, the rename starts
    visits = run_visits(browsers, server.url, block.visitors)
    result = attack.result(timeout=900)
    block.attacks.append(result)
    block.hostile += [s for _, _, s in visits]
    block.overlapped += sum(end <= result["rename end"] for _, end, _ in visits)


def run_block(n: int, rounds: int, servers: list[Server], browsers: list[Browser], hostile_browser: Browser,
              round_base: int) -> list[Block]:
    """Every server's quiet and hostile rounds for N visitors, their order rotated each round."""
    blocks = {s.label: Block(s.label, n) for s in servers}
    for server in servers:
        server.monitor.phase = f"N={n} setup"
        blocks[server.label].before = server.monitor.take()
        hostile_browser.submit(server.hostile.open, server.url).result(timeout=900)
    combos = [(server, kind) for server in servers for kind in ("quiet", "hostile")]
    for r in range(rounds):
        order = combos[r % len(combos):] + combos[:r % len(combos)]
        for server, kind in (order if r % 2 == 0 else order[::-1]):
            for other in servers:
                other.monitor.phase = f"N={n} {kind}" if other is server else f"N={n} waiting"
            print(f"  N={n} round {r + 1}/{rounds}: {server.label} {kind}", file=sys.stderr, flush=True)
            block = blocks[server.label]
            if kind == "quiet":
                block.quiet += [s for _, _, s in run_visits(browsers, server.url, n)]
            else:
                hostile_round(server, block, browsers, hostile_browser, round_base + r)
    for server in servers:
        server.monitor.phase = f"N={n} after"
        hostile_browser.submit(server.hostile.close).result(timeout=120)
    closed = time.monotonic()
    for server in servers:
        block = blocks[server.label]
        while time.monotonic() - closed < 60 and server.monitor.scratch()[1]:
            time.sleep(0.25)
        block.freed_s = time.monotonic() - closed if not server.monitor.scratch()[1] else float("nan")
    time.sleep(max(0.0, AFTER_S - (time.monotonic() - closed)))
    for server in servers:
        blocks[server.label].after = server.monitor.take()
    return list(blocks.values())


def start_server(root: Path, env: dict[str, str], timeout: float = 300.0) -> subprocess.Popen:
    """``streamlit run app.py`` of the tree at ``root`` (tests/e2e/conftest.py ``start_app``
    for this tree; a baseline revision's tree is run the same way, its package first on the path)."""
    if root == ROOT:
        return start_app(free_port(), env=env, timeout=timeout)
    port = free_port()
    log = open(ARTIFACTS / f"streamlit-baseline-{port}.log", "w")   # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
        cwd=root, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env, "PYTHONPATH": str(root)})
    proc.port = port                                                  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the baseline server exited with {proc.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
                if reply.read().strip() == b"ok":
                    return proc
        except OSError:
            time.sleep(0.3)
    stop_app(proc)
    raise RuntimeError(f"the baseline server did not answer in {timeout:.0f} s; see {log.name}")


def port_of(proc: subprocess.Popen) -> int:
    port = getattr(proc, "port", None)
    if port is not None:
        return port
    args = proc.args
    return int(args[args.index("--server.port") + 1])


def baseline_tree(rev: str, folder: Path) -> Path:
    """The repository at ``rev`` (``git archive``), to serve beside the current tree."""
    tree = folder / f"baseline-{rev.replace('/', '_')}"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


# -- report ---------------------------------------------------------------------------------
def med(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} (max {max(values):.2f})" if values else "-"


def ratio(a: list[float], b: list[float]) -> str:
    return f"{statistics.median(a) / statistics.median(b):.2f}x" if a and b else "-"


def report(blocks: list[Block], servers: list[Server], idle: dict[str, Sample]) -> None:
    by = {s.label: s for s in servers}
    for label, sample in idle.items():
        print(f"\n{label}: server idle after its first warm visits: RSS {sample.rss_mb:.0f} MB, "
              f"RssAnon {sample.anon_mb:.0f} MB, scratch {sample.scratch_mb:.2f} MB")
    print("\ntime to a usable page, seconds (median, max) and the server's figures:")
    head = ("server", "N", "quiet", "hostile", "hostile/quiet", "health max q/h (s)", "server cores q/h",
            "RSS peak q/h (MB)", "scratch peak (MB)", "overlap")
    rows = []
    for b in blocks:
        monitor = by[b.label].monitor
        phase = {k: f"N={b.visitors} {k}" for k in ("quiet", "hostile")}
        health = {k: max((s for _, p, s in monitor.health if p == phase[k]), default=0.0) for k in phase}
        rss = {k: max((s.rss_mb for s in monitor.of(phase[k])), default=0.0) for k in phase}
        rows.append((b.label, str(b.visitors), med(b.quiet), med(b.hostile), ratio(b.hostile, b.quiet),
                     f"{health['quiet']:.2f} / {health['hostile']:.2f}",
                     f"{monitor.cpu_share(phase['quiet']):.2f} / {monitor.cpu_share(phase['hostile']):.2f}",
                     f"{rss['quiet']:.0f} / {rss['hostile']:.0f}",
                     f"{max((s.scratch_mb for s in monitor.of(phase['hostile'])), default=0):.2f}",
                     f"{b.overlapped}/{len(b.hostile)}"))
    table(head, rows)
    if len(servers) > 1:
        print("\nthis tree against the baseline, same rounds (median usable time, this / baseline):")
        current, base = servers[0].label, servers[1].label
        pairs = [(b, next(o for o in blocks if o.label == base and o.visitors == b.visitors))
                 for b in blocks if b.label == current]
        table(("N", "quiet", "hostile", "hostile/quiet: this", "hostile/quiet: baseline"),
              [(str(b.visitors), ratio(b.quiet, o.quiet), ratio(b.hostile, o.hostile), ratio(b.hostile, b.quiet),
                ratio(o.hostile, o.quiet)) for b, o in pairs])
    print("\nbefore and after the visits (every context closed; grace 2 s, janitor tick 5 s):")
    rows = [(b.label, str(b.visitors), f"{b.before.rss_mb:.0f} -> {b.after.rss_mb:.0f}",
             f"{b.before.anon_mb:.0f} -> {b.after.anon_mb:.0f}",
             f"{b.before.scratch_mb:.2f} -> {b.after.scratch_mb:.2f}", f"{b.after.sessions}",
             f"{b.freed_s:.1f}") for b in blocks]
    table(("server", "N", "RSS MB", "RssAnon MB", "scratch MB", "session folders left", "freed after (s)"), rows)
    print("\nthe hostile visitor (each round):")
    rows = [(b.label, str(b.visitors), med([a["long key refused"] for a in b.attacks]),
             med([a["nested merges refused"] for a in b.attacks]),
             med([a["rename end"] - a["rename start"] for a in b.attacks]),
             f"{sum(a['rename refused'] for a in b.attacks):.0f}/{len(b.attacks)}") for b in blocks]
    table(("server", "N", "1 MB key refused (s)", "nested merges refused (s)", "backtracking rename ran (s)",
           "rename timed out"), rows)


def table(head: tuple, rows: list[tuple]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(x).ljust(w) for x, w in zip(row, widths)) + " |")


def write_csv(path: Path, servers: list[Server]) -> None:
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["server", "t", "phase", "rss_mb", "anon_mb", "cpu_s", "scratch_mb", "sessions"])
        t0 = min((s.monitor.samples[0].t for s in servers if s.monitor.samples), default=0.0)
        for server in servers:
            for s in server.monitor.samples:
                out.writerow([server.label, f"{s.t - t0:.2f}", s.phase, f"{s.rss_mb:.1f}", f"{s.anon_mb:.1f}",
                              f"{s.cpu_s:.2f}", f"{s.scratch_mb:.3f}", s.sessions])


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", default="1,4,8", help="comma-separated N")
    parser.add_argument("--rounds", type=int, default=3, help="quiet+hostile rounds per N (and server)")
    parser.add_argument("--hostile-keys", type=int, default=300, help="keys of the hostile source")
    parser.add_argument("--baseline", metavar="REV", help="also serve this git revision's tree, rounds interleaved")
    parser.add_argument("--csv", type=Path, help="write the server samples (every 0.25 s) here")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 visitors, one round, 60 keys")
    args = parser.parse_args()
    if args.quick:
        args.visitors, args.rounds, args.hostile_keys = "2", 1, 60
    counts = [int(n) for n in args.visitors.split(",")]
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"torch {torch.__version__}")
    print("uptime at start:", uptime())
    ARTIFACTS.mkdir(exist_ok=True)
    env = {"CKPTLAB_SESSION_GRACE": str(GRACE_S)}
    servers: list[Server] = []
    browsers = [Browser() for _ in range(max(counts))]
    hostile_browser = Browser()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = hostile_files(folder, args.hostile_keys)
        trees = [("this tree", ROOT)] + ([(f"baseline {args.baseline}", baseline_tree(args.baseline, folder))]
                                         if args.baseline else [])
        try:
            for label, tree in trees:
                proc = start_server(tree, env)
                url = f"http://127.0.0.1:{port_of(proc)}"
                servers.append(Server(label, url, proc, Monitor(proc.pid), Hostile(folder, files)))
            for b in [*browsers, hostile_browser]:
                b.ready.result(timeout=120)
            idle = {}
            for server in servers:
                run_visits(browsers, server.url, len(browsers))   # each chromium's first page; warm servers
            time.sleep(AFTER_S)
            for server in servers:
                idle[server.label] = server.monitor.take()
                server.monitor.start(server.url)
            blocks = [b for i, n in enumerate(counts)
                      for b in run_block(n, args.rounds, servers, browsers, hostile_browser, 100 * i)]
        finally:
            for server in servers:
                server.monitor.stop.set()
            for b in [*browsers, hostile_browser]:
                b.stop()
            for server in servers:
                stop_app(server.proc)
    report(blocks, servers, idle)
    print("\nuptime at end:", uptime())
    if args.csv:
        write_csv(args.csv, servers)


if __name__ == "__main__":
    main()
