"""Key names come from untrusted files: what the CLI prints (tables, footers, warnings, error
lines) never passes a control character to the terminal. A key holding ``ESC [2J`` (clear the
screen), a carriage return (overwrite the line) or an OSC title sequence is shown escaped, exactly
(``\\x1b[2J``, ``\\r``), while ``--json`` keeps the exact key (escaped by JSON itself)."""
from __future__ import annotations

import json
import os
import re
import sys
import unicodedata
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ckptlab.cli import main
from tests.paths import ROOT

CLEAR = "m\x1b[2J\rx"  # a module name: clear the screen, then return to the line start
TITLE = "t\x1b]0;owned\x07\x08"  # set the terminal title (OSC ... BEL), then a backspace
C1 = "c\x9b2J\u202e"  # the one-byte CSI (C1 control), then a right-to-left override
SHOWN = {CLEAR: r"m\x1b[2J\rx", TITLE: r"t\x1b]0;owned\x07\x08", C1: r"c\x9b2J\u202e"}


def _controls(text: str) -> list[str]:
    """Every control or format character in ``text`` but the line ends (and lone surrogates)."""
    return [c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Cs") and c != "\n"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("evil")
    a, b = folder / "a.safetensors", folder / "b.safetensors"
    save_file({f"{CLEAR}.weight": torch.ones(2, 2), f"{TITLE}.w": torch.zeros(3), f"{C1}.w": torch.ones(1),
               "plain.w": torch.ones(2)}, a)
    # b: CLEAR's bias is not in a (its module is only partly fed: a warning names it); TITLE differs in value
    save_file({f"{CLEAR}.weight": torch.ones(2, 2), f"{CLEAR}.bias": torch.ones(2), f"{TITLE}.w": torch.ones(3),
               f"{C1}.w": torch.ones(1), "plain.w": torch.ones(2)}, b)
    return a, b


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["inspect", "inspect --no-fold", "stats", "align", "diff"])
def test_readable_output_shows_control_characters_escaped(capsys, pair, command):
    args = command.split() + ([str(pair[0])] if command.split()[0] in ("inspect", "stats") else list(map(str, pair)))
    code, out, err = _run(capsys, *args)
    assert code == 0, err
    assert _controls(out) == [] and _controls(err) == [], (out, err)
    for name, shown in SHOWN.items():
        assert shown in out, (name, out)
    if command == "align":
        assert r"m\x1b[2J\rx" in err  # the partly-fed warning names the module, escaped


@pytest.mark.parametrize("command", ["inspect", "stats", "align", "diff"])
def test_json_output_keeps_the_exact_keys(capsys, pair, command):
    args = [command] + ([str(pair[0])] if command in ("inspect", "stats") else list(map(str, pair))) + ["--json"]
    code, out, err = _run(capsys, *args)
    assert code == 0, err
    assert _controls(out) == [], out  # JSON escapes them (\u001b, \u009b, \u202e): the same string
    data = json.loads(out)
    rows = data.get("tensors") or data.get("rows") or data.get("pairs")
    keys = {r.get("key") or r.get("target") for r in rows}
    assert {f"{CLEAR}.weight", f"{TITLE}.w", f"{C1}.w"} <= keys


def test_an_error_line_naming_a_key_holds_no_control_character(capsys, pair, tmp_path):
    bad = tmp_path / "bad.safetensors"
    save_file({f"{CLEAR}.weight": torch.ones(3, 3)}, bad)  # a shape mismatch at the evil key
    code, out, err = _run(capsys, "remap", bad, pair[1], "-o", tmp_path / "out.safetensors", "--auto", "none")
    assert code == 1 and out == ""
    assert _controls(err) == [] and r"m\x1b[2J\rx" in err, err
    assert not (tmp_path / "out.safetensors").exists()


def test_a_terminal_narrower_than_the_keys_gets_them_escaped_too(pair, capfd, monkeypatch):
    """The terminal path (keys wrapped at dots to fit) sends only colour/style sequences."""
    for name in ("COLUMNS", "FORCE_COLOR", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TTY_COMPATIBLE", "1")        # rich takes the captured stdout for a terminal...
    monkeypatch.setenv("COLUMNS", "50")              # ...50 columns wide
    code = main(["align", *map(str, pair)])
    out, err = capfd.readouterr()
    assert code == 0, err
    styled = re.sub(r"\x1b\[[0-9;]*m", "", out)  # SGR: ckptlab's own colours
    assert _controls(styled) == [] and _controls(err) == [], styled
    assert r"\x1b[2J" in styled.replace("\n", "").replace(" ", "").replace("│", "")


def test_print_json_escapes_what_a_terminal_would_act_on_and_decodes_to_the_same_strings(capsys):
    from ckptlab.cli.output import print_json

    value = {"keys": ["\x1b[2J", "\x9b", "\u2028", "\u202e", "\U000e0001", "\ud800", "caf\u00e9 \u4e2d"]}
    print_json(value)
    out = capsys.readouterr().out
    assert _controls(out) == [] and "caf\u00e9 \u4e2d" in out  # printable text stays as it is
    assert json.loads(out) == value


def test_verify_lists_an_unexpected_key_escaped(capsys, tmp_path):
    import ckptlab

    ck = ckptlab.open(ROOT / "sample_ckpts" / "convnet_rgb.pt")
    state = {k: ck.tensor(k).contiguous() for k in ck.keys()}
    state[f"{CLEAR}.weight"] = torch.ones(1)
    save_file(state, tmp_path / "extra.safetensors")
    code, out, err = _run(capsys, "verify", tmp_path / "extra.safetensors", "--model", "sample_ckpts.models:ConvNet")
    assert code == 1
    assert _controls(out) == [] and _controls(err) == []
    assert r"  unexpected  m\x1b[2J\rx.weight" in out.splitlines()


def _terminal_stderr(monkeypatch):
    """stderr as a real terminal (a pty), and a function that reads what was written to it."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 24 rows, 120 columns
    monkeypatch.setattr(sys, "stderr", open(slave, "w", buffering=1))

    def written() -> bytes:
        import select

        sys.stderr.flush()
        out = b""
        while select.select([master], [], [], 0.5)[0]:  # the pty hands bytes over a moment later
            out += os.read(master, 65536)
        return out

    return written


PROGRESS_KEY = "m\x1b[2J\rx[/bold].w"  # an ANSI payload, and a closing tag rich markup would choke on


def test_the_stats_progress_bar_shows_a_key_escaped_and_never_as_markup(monkeypatch):
    from ckptlab.cli.progress import byte_progress

    written = _terminal_stderr(monkeypatch)
    with byte_progress("stats") as update:  # was: rich.errors.MarkupError out of the command
        update(10, 2**27, PROGRESS_KEY)
    shown = written().decode()
    assert r"m\x1b[2J\rx[/bold].w" in shown and "\x1b[2J" not in shown


def test_the_remap_progress_bar_shows_a_key_escaped(monkeypatch):
    import time

    from ckptlab.cli.remap_cmd import _ProgressBar

    written = _terminal_stderr(monkeypatch)
    with _ProgressBar(disabled=False) as bar:
        bar.update(1, 100, PROGRESS_KEY)
        time.sleep(0.2)  # past tqdm's refresh interval: the next update draws the key
        bar.update(2, 100, PROGRESS_KEY)
        shown = written().decode()
    assert r"m\x1b[2J\rx[/bold].w" in shown and "\x1b[2J" not in shown
