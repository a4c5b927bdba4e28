"""``ckptlab app``: start the web app (``streamlit run app.py``)."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app.py"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("app", help="start the web app")
    p.add_argument("--port", type=int, default=None, help="port to serve on")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP)]
    if args.port:
        cmd += ["--server.port", str(args.port)]
    return subprocess.call(cmd)
