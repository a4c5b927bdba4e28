"""ckptlab reads a torch zip the way ``torch.load`` does, or refuses it (issue 18.5).

torch 2.13 takes the archive's folder from the first member's name and refuses a member
outside it; it loads an archive that lists a name twice, reading one copy chosen by its zip
index (in these tests the first ``data/0`` but the last ``data.pkl``), so no reader can
say which bytes a training script gets. Each case is checked against real ``torch.load``
and must end in ckptlab in one line; well-formed archives still open in both.
"""
from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

import ckptlab
from ckptlab.errors import UnreadableFileError
from tests.security.conftest import assert_one_line

W = torch.arange(4.0)


def members() -> list[tuple[str, bytes]]:
    buf = io.BytesIO()
    torch.save({"w": W}, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def write(path: Path, entries: list[tuple[str, bytes]]) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
            for name, data in entries:
                z.writestr(name, data)
    return path


def moved(name: str, folder: str) -> str:
    return folder + "/" + name.split("/", 1)[1]


NEGATED = (-W).numpy().tobytes()
REFUSED_BY_TORCH = {
    "storage_in_other_folder": lambda m: [(moved(n, "evil") if n.endswith("data/0") else n, d) for n, d in m],
    "extra_member_in_other_folder": lambda m: m + [("evil/data/0", NEGATED)],
    "other_folder_listed_first": lambda m: [("evil/data/0", NEGATED)] + m,
    "member_outside_any_folder": lambda m: m + [("README", b"x")],
    "no_folder_at_all": lambda m: [(n.split("/", 1)[1], d) for n, d in m],
    "data_pkl_one_level_down": lambda m: [(moved(n, "archive/sub"), d) for n, d in m],
}


@pytest.mark.parametrize("case", list(REFUSED_BY_TORCH))
def test_an_archive_torch_refuses_is_refused(tmp_path, case):
    path = write(tmp_path / f"{case}.pt", REFUSED_BY_TORCH[case](members()))
    with pytest.raises(RuntimeError):
        torch.load(path, weights_only=True)
    with pytest.raises(UnreadableFileError, match="folder|torch.load") as err:
        ckptlab.open(path)
    assert_one_line(err.value)


def test_a_storage_listed_twice_is_refused_where_torch_reads_an_arbitrary_copy(tmp_path):
    entries = members()
    path = write(tmp_path / "dup_storage.pt", entries + [("archive/data/0", NEGATED)])
    assert torch.equal(torch.load(path, weights_only=True)["w"], W)          # torch: the first copy
    with zipfile.ZipFile(path) as z:
        assert z.read("archive/data/0") == NEGATED                           # zipfile: the last one
    with pytest.raises(UnreadableFileError, match=r"'archive/data/0' is listed twice") as err:
        ckptlab.open(path)
    assert_one_line(err.value)


def test_a_data_pkl_listed_twice_is_refused(tmp_path):
    buf = io.BytesIO()
    torch.save({"w": W, "x": 1}, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        other = z.read("archive/data.pkl")
    path = write(tmp_path / "dup_pkl.pt", members() + [("archive/data.pkl", other)])
    assert torch.load(path, weights_only=True)["x"] == 1                    # torch: here, the second copy
    with pytest.raises(UnreadableFileError, match=r"'archive/data.pkl' is listed twice"):
        ckptlab.open(path)


def test_well_formed_archives_open_in_both(tmp_path):
    plain = write(tmp_path / "plain.pt", members())
    with_dir_entry = write(tmp_path / "dir_first.pt", [("archive/", b"")] + members())
    renamed = write(tmp_path / "renamed.pt", [(moved(n, "my_model"), d) for n, d in members()])
    for path in (plain, with_dir_entry, renamed):
        assert torch.equal(torch.load(path, weights_only=True)["w"], W)
        assert torch.equal(ckptlab.open(path).tensor("w"), W)
