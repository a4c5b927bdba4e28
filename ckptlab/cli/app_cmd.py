"""``ckptlab app``: serve the web app with Streamlit, in a child process that dies with this one.

The page script and its Streamlit options ship inside the package (``ckptlab/ui/app_script.py``,
``ckptlab/ui/streamlit_config.toml``), so the app behaves the same from any folder and from a
wheel: the options are passed as flags, which outrank any ``.streamlit/config.toml`` around.
SIGTERM, SIGINT and SIGHUP are handed to the child and waited for; on Linux the child also
gets SIGTERM if this process dies without a word (SIGKILL), so no server is left behind.

The server listens on localhost unless ``--address`` says otherwise: a page whose visitors
upload files and build models is shared on purpose, never by default. What visitors may
build as a model is the app's allowlist (``ckptlab.io.model_target.ModelAllowlist``), widened by
``--allow-model`` (handed to the server as ``CKPTLAB_MODEL_ALLOW``).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

UI = Path(__file__).resolve().parents[1] / "ui"
SCRIPT = UI / "serve.py"            # an st.App: the page (app_script.py) + the file route
CONFIG = UI / "streamlit_config.toml"
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
STOP_GRACE_S = 10.0
DEFAULT_ADDRESS = "127.0.0.1"
MODEL_ALLOW_ENV = "CKPTLAB_MODEL_ALLOW"   # = ckptlab.io.model_target.MODEL_ALLOW_ENV (no torch import here)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("app", help="start the web app (Streamlit) on the bundled demo pair",
                       description="Serve the ckptlab web app with Streamlit and the app's own settings "
                                   "(2 GB uploads, headless). Ctrl-C or SIGTERM stops it.")
    p.add_argument("--port", type=int, default=None, help="port to serve on (default: Streamlit's, 8501)")
    p.add_argument("--address", default=DEFAULT_ADDRESS,
                   help=f"address to listen on (default: {DEFAULT_ADDRESS}, this machine only; "
                        "--address 0.0.0.0 shares it with every network this machine is on)")
    p.add_argument("--allow-model", action="append", default=[], metavar="SPEC",
                   help="let visitors build this model definition too: 'pkg.module:Name', or 'pkg.module:*' for "
                        f"what that module defines (repeatable; adds to {MODEL_ALLOW_ENV}). A spec is code: "
                        "list only callables that build a model from plain arguments")
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


def child_env(args: argparse.Namespace, env: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment: ``--allow-model`` specs join ``CKPTLAB_MODEL_ALLOW``."""
    env = dict(os.environ if env is None else env)
    specs = [s for s in [env.get(MODEL_ALLOW_ENV, "")] + list(getattr(args, "allow_model", []) or []) if s.strip()]
    if specs:
        env[MODEL_ALLOW_ENV] = ",".join(specs)
    return env


def check_allow_model(specs: list[str]) -> None:
    """A malformed ``--allow-model`` is a one-line error before anything starts."""
    from ckptlab.errors import ModelSpecError

    for spec in specs:
        head, sep, tail = spec.strip().partition(":")
        if not (sep and head and all(p.isidentifier() for p in head.split("."))
                and (tail == "*" or all(p.isidentifier() for p in tail.split(".")))):
            raise ModelSpecError(f"--allow-model {spec!r} is not 'pkg.module:Name' or 'pkg.module:*'")


def banner(args: argparse.Namespace) -> str:
    """What the console says besides Streamlit's URLs: who can reach the page, how to share it."""
    if args.address in ("127.0.0.1", "localhost", "::1"):
        return (f"ckptlab app: listening on {args.address} only (this machine). To share it with your team, "
                "start it with --address 0.0.0.0 (every visitor can upload files and build the allowed models).")
    return (f"ckptlab app: listening on {args.address}: anyone who can reach this machine can use the page. "
            "Stop with Ctrl-C.")


def run(args: argparse.Namespace) -> int:
    check_allow_model(getattr(args, "allow_model", []) or [])
    print(banner(args), file=sys.stderr, flush=True)
    child = subprocess.Popen(command(args), env=child_env(args),
                             preexec_fn=_die_with_parent if sys.platform == "linux" else None)
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
        if code in (0, -received[0]) or (received[0] == signal.SIGINT and code == 1):  # Ctrl-C: click's "Aborted!"
            return 0
        return 128 + -code if code < 0 else code
    return 128 + -code if code < 0 else code
