"""``ckptlab app``: serve the web app with Streamlit, in a child process that dies with this one.

The page script and its Streamlit options ship inside the package (``ckptlab/ui/app_script.py``,
``ckptlab/ui/streamlit_config.toml``), so the app behaves the same from any folder and from a
wheel: the options are passed as flags, which outrank any ``.streamlit/config.toml`` around.
SIGTERM, SIGINT and SIGHUP are handed to the child and waited for; on Linux the child also
gets SIGTERM if this process dies without a word (SIGKILL), so no server is left behind.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

UI = Path(__file__).resolve().parents[1] / "ui"
SCRIPT = UI / "serve.py"            # an st.App: the page (app_script.py) + the file route
CONFIG = UI / "streamlit_config.toml"
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
STOP_GRACE_S = 10.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("app", help="start the web app (Streamlit) on the bundled demo pair",
                       description="Serve the ckptlab web app with Streamlit and the app's own settings "
                                   "(2 GB uploads, headless). Ctrl-C or SIGTERM stops it.")
    p.add_argument("--port", type=int, default=None, help="port to serve on (default: Streamlit's, 8501)")
    p.add_argument("--address", default=None, help="address to listen on (default: every interface)")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def config_flags(path: Path = CONFIG) -> list[str]:
    """``streamlit run`` flags for every option of a Streamlit config file (``--server.headless=true``)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: Streamlit's own dependency reads it
        import toml as tomllib  # type: ignore[no-redef]

    options = tomllib.loads(path.read_text(encoding="utf-8"))
    flags = []
    for section, values in options.items():
        for name, value in values.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            flags.append(f"--{section}.{name}={text}")
    return flags


def command(args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-m", "streamlit", "run", str(SCRIPT), *config_flags()]
    if args.port:
        cmd.append(f"--server.port={args.port}")
    if args.address:
        cmd.append(f"--server.address={args.address}")
    return cmd


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run(args: argparse.Namespace) -> int:
    child = subprocess.Popen(command(args), preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    received: list[int] = []

    def forward(signum, _frame) -> None:
        received.append(signum)
        if child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        while True:
            try:
                code = child.wait(timeout=STOP_GRACE_S if received else None)
                break
            except subprocess.TimeoutExpired:  # asked to stop and did not: make it
                child.kill()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:  # stopped on request: that is how a server ends
        return 0 if code in (0, -received[0]) else (128 + -code if code < 0 else code)
    return 128 + -code if code < 0 else code
