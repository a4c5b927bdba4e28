"""A newcomer's install: a wheel built from the repo, installed into a fresh venv, used from a
folder outside the repo. ``ckptlab`` is on PATH, a bundled sample opens, and ``ckptlab app``
serves the app with its own settings and stops together with its Streamlit child on SIGTERM.

The child venv sees the packages of the interpreter running the tests (a ``.pth`` file lists
its site-packages folders: in a newcomer's venv those are the venv's, where
``--system-site-packages`` would show the base interpreter's) and the wheel is installed with
``--no-deps``, so torch is not reinstalled; the repo is never on the path.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import site
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ckptlab.cli import app_cmd
from tests.paths import ROOT


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("install")
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("ckptlab", "sample_ckpts"):
        shutil.copytree(ROOT / package, src / package, ignore=ignore)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(work / "dist")], check=True, env=env, cwd=work)
    wheel, = (work / "dist").glob("ckptlab-*.whl")
    bin_dir = see_running_packages(work / "venv", env)
    subprocess.run([bin_dir / "python", "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q", str(wheel)],
                   check=True, env=env, cwd=work)
    away = work / "elsewhere"  # a folder with neither the repo nor a .streamlit/ config
    away.mkdir()
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return {"bin": bin_dir, "cwd": away, "env": env}


def running_site_dirs() -> list[str]:
    """Where this interpreter's packages live: a venv's own site-packages inside a venv (plus
    the base ones only if it was made with ``--system-site-packages``), the user site if on."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        dirs.append(site.getusersitepackages())
    return dirs


def see_running_packages(folder: Path, env: dict) -> Path:
    """A venv (no pip of its own, no system site) whose path ends with this interpreter's
    site-packages: a plain ``.pth`` of folder names, so their own ``.pth`` files (an
    editable ckptlab pointing at a repo) are not run. Returns its bin folder."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, env=env)
    bin_dir = folder / "bin"
    purelib = subprocess.run([bin_dir / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, env=env, capture_output=True, text=True).stdout.strip()
    Path(purelib, "_running_interpreter.pth").write_text("".join(d + "\n" for d in running_site_dirs()))
    return bin_dir


def run(venv: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv["bin"] / "ckptlab"), *args], cwd=venv["cwd"], env=venv["env"],
                          capture_output=True, text=True, timeout=120)


def test_the_console_script_runs_from_any_folder(venv):
    proc = run(venv, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: ckptlab") and "inspect" in proc.stdout and "app" in proc.stdout
    where = subprocess.run([str(venv["bin"] / "python"), "-c", "import ckptlab, sample_ckpts; "
                            "print(ckptlab.__file__); print(sample_ckpts.__file__)"],
                           cwd=venv["cwd"], env=venv["env"], capture_output=True, text=True, check=True)
    for line in where.stdout.split():
        assert Path(line).is_relative_to(venv["bin"].parent), line  # the installed copy, not the repo


def test_inspect_a_bundled_sample_and_use_a_bundled_model(venv):
    samples = subprocess.run([str(venv["bin"] / "python"), "-c", "import ckptlab.io.allowed_roots as r; print(r.SAMPLES_DIR)"],
                             cwd=venv["cwd"], env=venv["env"], capture_output=True, text=True, check=True)
    folder = Path(samples.stdout.strip())
    assert folder.is_relative_to(venv["bin"].parent)
    proc = run(venv, "inspect", str(folder / "convnet_rgb_lightning.ckpt"), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["container"] == "state_dict" and out["tensors"][0]["key"] == "model.conv1.weight"
    proc = run(venv, "verify", str(folder / "convnet_rgb.pt"), "--model", "sample_ckpts.models:ConvNet", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["ok"], proc.stderr
    proc = run(venv, "recipes", "--json")  # the catalogue's YAML files ship in the wheel
    assert proc.returncode == 0, proc.stderr
    names = {r["name"] for r in json.loads(proc.stdout)["recipes"]}
    shipped = {p.stem for p in (ROOT / "ckptlab" / "recipe" / "known").glob("*.yaml")}
    assert shipped and len(names) >= len(shipped)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc to find the Streamlit child")
def test_app_serves_with_its_settings_and_stops_with_its_child(venv):
    port = free_port()
    proc = subprocess.Popen([str(venv["bin"] / "ckptlab"), "app", "--port", str(port), "--address", "127.0.0.1"],
                            cwd=venv["cwd"], env=venv["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline, health = time.monotonic() + 60, None
        while time.monotonic() < deadline and health != b"ok":
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                health = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read()
            except OSError:
                time.sleep(0.2)
        assert health == b"ok"
        kids = children(proc.pid)
        assert len(kids) == 1
        cmdline = Path(f"/proc/{kids[0]}/cmdline").read_bytes().split(b"\0")
        assert b"--server.maxUploadSize=2048" in cmdline and b"--server.headless=true" in cmdline
        assert Path(cmdline[cmdline.index(b"run") + 1].decode()).is_relative_to(venv["bin"].parent)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while alive(kids[0]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(kids[0]), "the Streamlit child outlived ckptlab app"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_repo_streamlit_config_equals_the_packaged_one():
    """``streamlit run app.py`` (the repo's .streamlit/config.toml) and ``ckptlab app`` (the packaged
    copy, as flags) run with the same options."""
    assert (ROOT / ".streamlit" / "config.toml").read_bytes() == app_cmd.CONFIG.read_bytes()
    flags = app_cmd.config_flags()
    assert "--server.maxUploadSize=2048" in flags and "--client.showErrorDetails=none" in flags
