"""The web app reads server paths only under the allowed roots (no '..', no links out)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ckptlab.errors import PathNotAllowedError, UnreadableFileError
from ckptlab.io.allowed_roots import ROOTS_ENV, SAMPLES_DIR, allowed_roots, check_path


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "inside.pt").write_bytes(b"x")
    (outside / "secret.pt").write_bytes(b"s")
    (root / "sub").mkdir()
    (root / "sub" / "deep.pt").write_bytes(b"d")
    return {"root": root, "outside": outside}


def test_default_roots_are_samples_and_start_dir(tmp_path: Path) -> None:
    roots = allowed_roots(start_dir=tmp_path, env={})
    assert roots == [SAMPLES_DIR.resolve(), tmp_path.resolve()]


def test_env_adds_roots_and_skips_missing_and_duplicates(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    env = {ROOTS_ENV: os.pathsep.join([str(extra), str(tmp_path / "nope"), str(tmp_path), ""])}
    roots = allowed_roots(start_dir=tmp_path, env=env)
    assert roots == [SAMPLES_DIR.resolve(), tmp_path.resolve(), extra.resolve()]


def test_inside_paths_resolve(tree: dict[str, Path]) -> None:
    roots = [tree["root"]]
    assert check_path(str(tree["root"] / "inside.pt"), roots) == (tree["root"] / "inside.pt").resolve()
    assert check_path("sub/deep.pt", roots) == (tree["root"] / "sub" / "deep.pt").resolve()


def test_relative_path_found_in_second_root(tree: dict[str, Path]) -> None:
    assert check_path("secret.pt", [tree["root"], tree["outside"]]) == (tree["outside"] / "secret.pt").resolve()


def test_absolute_path_outside_is_refused(tree: dict[str, Path]) -> None:
    with pytest.raises(PathNotAllowedError, match="outside the allowed folders"):
        check_path(str(tree["outside"] / "secret.pt"), [tree["root"]])


def test_missing_file_outside_is_refused_not_reported_missing(tree: dict[str, Path]) -> None:
    # The answer must not tell whether a file outside the roots exists.
    with pytest.raises(PathNotAllowedError):
        check_path(str(tree["outside"] / "does-not-exist.pt"), [tree["root"]])


@pytest.mark.parametrize("text", ["../outside/secret.pt", "sub/../inside.pt", "sub/../../outside/secret.pt"])
def test_dotdot_is_refused_even_when_it_stays_inside(tree: dict[str, Path], text: str) -> None:
    with pytest.raises(PathNotAllowedError, match=r"'\.\.'"):
        check_path(text, [tree["root"]])
    with pytest.raises(PathNotAllowedError):
        check_path(str(tree["root"]) + "/" + text, [tree["root"]])


def test_symlink_out_of_a_root_is_refused(tree: dict[str, Path]) -> None:
    (tree["root"] / "link.pt").symlink_to(tree["outside"] / "secret.pt")
    (tree["root"] / "linkdir").symlink_to(tree["outside"], target_is_directory=True)
    for text in ("link.pt", "linkdir/secret.pt", str(tree["root"] / "link.pt")):
        with pytest.raises(PathNotAllowedError):
            check_path(text, [tree["root"]])


def test_symlink_within_a_root_is_allowed(tree: dict[str, Path]) -> None:
    (tree["root"] / "alias.pt").symlink_to(tree["root"] / "sub" / "deep.pt")
    assert check_path("alias.pt", [tree["root"]]) == (tree["root"] / "sub" / "deep.pt").resolve()


def test_missing_file_inside_says_so(tree: dict[str, Path]) -> None:
    with pytest.raises(UnreadableFileError, match="no such file"):
        check_path("nothing-here.pt", [tree["root"]])


def test_empty_path_is_refused(tree: dict[str, Path]) -> None:
    with pytest.raises(PathNotAllowedError, match="no path"):
        check_path("  ", [tree["root"]])


def test_root_prefix_trick_is_refused(tmp_path: Path) -> None:
    # '/x/root-evil' starts with the string '/x/root' but is not inside it.
    root, evil = tmp_path / "root", tmp_path / "root-evil"
    root.mkdir()
    evil.mkdir()
    (evil / "a.pt").write_bytes(b"a")
    with pytest.raises(PathNotAllowedError):
        check_path(str(evil / "a.pt"), [root])


def test_errors_are_one_line(tree: dict[str, Path]) -> None:
    with pytest.raises(PathNotAllowedError) as info:
        check_path(str(tree["outside"] / "secret.pt"), [tree["root"]])
    assert "\n" not in str(info.value)
