"""What a reader returns is what the file holds: no gaps of old memory, no false ties,
and every failure a one-line message whatever names the file uses."""
from __future__ import annotations

import json
import pickle
import struct

import pytest
import torch
from safetensors.torch import save_file

import ckptlab
from ckptlab.errors import (
    CheckpointError,
    PathNotAllowedError,
    UnreadableFileError,
    quote,
)
from ckptlab.io.allowed_roots import check_path
from ckptlab.merge.planning import remap
from tests.security.conftest import assert_one_line
from tests.security.crafted import Ops, as_legacy, as_zip


# -- DCP: chunks must tile their tensor ------------------------------------------------------
def _dcp(folder, tensor):
    import torch.distributed.checkpoint as dcp

    dcp.save({"model": {"w": tensor}}, checkpoint_id=str(folder), no_dist=True)
    return folder


def _rewrite_metadata(folder, change):
    """Edit the saved Metadata object (torch's own classes) and pickle it back."""
    with open(folder / ".metadata", "rb") as f:
        md = pickle.load(f)  # our own file, written just above by torch
    change(md)
    with open(folder / ".metadata", "wb") as f:
        pickle.dump(md, f)


def test_a_dcp_tensor_declared_larger_than_its_chunks_names_the_gap(tmp_path):
    folder = _dcp(tmp_path / "ckpt", torch.arange(12.0).reshape(3, 4))

    def grow(md):
        entry = md.state_dict_metadata["model.w"]
        entry.size = torch.Size([5, 4])  # two rows no chunk holds: torch.empty would return heap bytes

    _rewrite_metadata(folder, grow)
    with pytest.raises(UnreadableFileError, match=r"cover 12 of its 20 elements; index \(3, 0\) is in no chunk"):
        ckptlab.open(folder)


def test_dcp_chunks_that_overlap_or_leave_the_tensor_are_refused(tmp_path):
    from torch.distributed.checkpoint.metadata import ChunkStorageMetadata

    folder = _dcp(tmp_path / "ckpt", torch.arange(12.0).reshape(3, 4))

    def twice(md):
        entry = md.state_dict_metadata["model.w"]
        entry.chunks.append(ChunkStorageMetadata(offsets=torch.Size([0, 0]), sizes=torch.Size([3, 4])))

    _rewrite_metadata(folder, twice)
    with pytest.raises(UnreadableFileError, match="overlap"):
        ckptlab.open(folder)

    def outside(md):
        entry = md.state_dict_metadata["model.w"]
        entry.chunks = [ChunkStorageMetadata(offsets=torch.Size([0, 0]), sizes=torch.Size([4, 4]))]

    folder = _dcp(tmp_path / "ckpt2", torch.arange(12.0).reshape(3, 4))
    _rewrite_metadata(folder, outside)
    with pytest.raises(UnreadableFileError, match="lies outside its shape"):
        ckptlab.open(folder)


def test_negative_dcp_sizes_and_byte_ranges_are_one_line_errors(tmp_path):
    folder = _dcp(tmp_path / "ckpt", torch.arange(6.0))

    def negative(md):
        md.state_dict_metadata["model.w"].size = torch.Size([-6])

    _rewrite_metadata(folder, negative)
    with pytest.raises(UnreadableFileError, match="malformed size") as err:
        ckptlab.open(folder)
    assert_one_line(err.value)

    folder = _dcp(tmp_path / "ckpt2", torch.arange(6.0))

    def past_the_end(md):
        for info in md.storage_data.values():
            info.length = 10**9

    _rewrite_metadata(folder, past_the_end)
    with pytest.raises(UnreadableFileError, match="beyond the end"):
        ckptlab.open(folder)


def test_deep_dcp_key_paths_are_kept_flat(tmp_path):
    folder = _dcp(tmp_path / "ckpt", torch.arange(3.0))

    def deep(md):
        md.planner_data["model.w"] = ["p"] * 5000

    _rewrite_metadata(folder, deep)
    ck = ckptlab.open(folder)
    assert ck.keys() == ["model.w"] and torch.equal(ck.tensor("model.w"), torch.arange(3.0))


def test_a_whole_dcp_checkpoint_still_reads_exactly(tmp_path):
    t = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    ck = ckptlab.open(_dcp(tmp_path / "ckpt", t))
    assert torch.equal(ck.tensor("w"), t)


# -- legacy files: storage counts and views --------------------------------------------------
def test_legacy_negative_counts_and_views_past_their_storage_are_refused(tmp_path):
    good = as_legacy(tmp_path / "good.pt", Ops(legacy=True).state_dict(w={}).stop()).read_bytes()
    negative = tmp_path / "negative.pt"
    negative.write_bytes(good.replace(struct.pack("<q", 8), struct.pack("<q", -8)))
    with pytest.raises(UnreadableFileError, match="holds -8 elements") as err:
        ckptlab.open(negative)
    assert_one_line(err.value)
    # a storage view (legacy pickles name views as (key, offset, size)) reaching past the storage
    ops = Ops(legacy=True)
    ops.empty_dict().str("w").glob("torch._utils", "_rebuild_tensor_v2").mark()
    ops.mark().str("storage").glob("torch", "FloatStorage").str("0").str("cpu").int(8)
    ops.mark().str("v").int(6).int(4).tuple().tuple().raw(b"Q")
    ops.int(0).tuple_of_ints((4,)).tuple_of_ints((1,)).false().glob("collections", "OrderedDict").empty_tuple()
    ops.reduce().tuple().reduce().setitem()
    with pytest.raises(UnreadableFileError, match="view of storage '0' reaches past its end"):
        ckptlab.open(as_legacy(tmp_path / "view.pt", ops.stop()))


# -- safetensors: ckptlab's own alias metadata is only a claim ---------------------------------
def test_an_expanded_tensor_as_torch_saves_it_opens_but_a_large_overlapping_view_does_not(tmp_path):
    # torch.save keeps expand()-ed tensors as their small storage with stride 0 (broadcast
    # position_ids, masks): a real file, which must open and read back exactly
    small = {"ids": torch.arange(6).expand(2, 6), "col": torch.randn(4, 1).expand(4, 5)}
    torch.save(small, tmp_path / "expanded.pt")
    ck = ckptlab.open(tmp_path / "expanded.pt")
    for key, value in small.items():
        assert torch.equal(ck.tensor(key), value)
    # the same trick past MAX_EXPANDED_VIEW_ELEMENTS is a bomb, refused in one line
    from ckptlab.io import limits

    side = int(limits.MAX_EXPANDED_VIEW_ELEMENTS ** 0.5) + 1
    torch.save({"w": torch.zeros(1, 1).expand(side, side)}, tmp_path / "big.pt")
    with pytest.raises(UnreadableFileError, match="MAX_VIEW_EXPANSION") as err:
        ckptlab.open(tmp_path / "big.pt").tensor("w")
    assert_one_line(err.value)


def test_alias_metadata_is_trusted_only_for_identical_bytes(tmp_path):
    a, b = torch.arange(6.0), torch.arange(6.0) + 100
    path = tmp_path / "lie.safetensors"
    save_file({"a": a, "b": b}, str(path), metadata={"ckptlab.aliases": json.dumps([["a", "b"]])})
    ck = ckptlab.open(path)
    assert ck.aliases() == [] or all(len(g) < 2 for g in ck.aliases())
    out = tmp_path / "out.pt"
    remap(path, path, out)
    back = torch.load(out, weights_only=True)
    assert torch.equal(back["a"], a) and torch.equal(back["b"], b)  # b's values, not a's

    honest = tmp_path / "tied.safetensors"
    save_file({"a": a, "b": a.clone()}, str(honest), metadata={"ckptlab.aliases": json.dumps([["a", "b"]])})
    assert [sorted(g) for g in ckptlab.open(honest).aliases()] == [["a", "b"]]


def test_safetensors_shapes_past_the_limits_are_refused(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [0, 2**63 - 1], "data_offsets": [0, 0]}}).encode()
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(CheckpointError) as err:
        ckptlab.open(path).tensor("w")
    assert_one_line(err.value)


# -- messages: names from the file never add lines, escapes or length ---------------------------
HOSTILE_NAMES = [
    "w\nckptlab: file verified safe",
    "\x1b[2J\x1b[32mverified\x1b[0m",
    "x" * 140_000,
    "nul\x00byte",
    "line\u2028separator",
    "bidi\u202eexe.txt",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=["newline", "ansi", "long", "nul", "u2028", "bidi"])
def test_names_from_the_file_are_escaped_and_bounded_in_every_message(tmp_path, name):
    # a storage type that does not exist, named by the hostile string: the error quotes it
    data = Ops().state_dict(w={}).stop().replace(b"FloatStorage", name.encode("utf-8", "surrogatepass")[:60_000])
    paths = [as_zip(tmp_path / "zip.pt", data)]
    # a legacy file whose storage-key list names a storage never used
    legacy = Ops(legacy=True).state_dict(w={}).stop()
    paths.append(as_legacy(tmp_path / "legacy.pt", legacy))
    data_legacy = paths[-1].read_bytes().replace(pickle.dumps(["0"], protocol=2), pickle.dumps(["0", name], protocol=2))
    paths[-1].write_bytes(data_legacy)
    # an index naming a missing shard
    index = tmp_path / "model.bin.index.json"
    index.write_text(json.dumps({"weight_map": {"w": name}}))
    paths.append(index)
    for path in paths:
        with pytest.raises(CheckpointError) as err:
            ckptlab.open(path)
        text = assert_one_line(err.value)
        assert "\n" not in text and "\x1b" not in text and "\x00" not in text


def test_quote_escapes_and_bounds_and_never_walks_a_dag():
    assert quote("a\nb") == "'a\\nb'"
    assert len(quote("x" * 10_000)) < 120
    dag: list = []
    for _ in range(60):
        dag = [dag, dag]
    assert len(quote(dag)) <= 80  # reprlib stops after two levels: no 2**60 walk


def test_the_constructor_makes_any_message_one_printable_line():
    err = CheckpointError("first\nsecond\x1b[31m" + "y" * 5000, "/tmp/" + "d" * 5000 + "/f\n.pt")
    text = str(err)
    assert text.isprintable() and len(text) <= 300 and "\\n" in text
    assert err.path.endswith("/f\n.pt")  # the path itself is kept as given


# -- server paths ------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["a\x00b.pt", "x" * 5000, "/" + "/".join(["d" * 200] * 30)])
def test_server_paths_with_nul_bytes_or_huge_names_are_refused(tmp_path, text):
    with pytest.raises(PathNotAllowedError) as err:
        check_path(text, [tmp_path])
    assert_one_line(err.value)


@pytest.mark.parametrize("text", ["a\x00b.pt", "x" * 5000 + ".pt", "/" + "/".join(["d" * 200] * 30) + ".pt"])
def test_output_paths_with_nul_bytes_or_huge_names_are_refused(tmp_path, text):
    from ckptlab.io.allowed_roots import check_output_path

    with pytest.raises(PathNotAllowedError) as err:
        check_output_path(text, [tmp_path])
    assert_one_line(err.value)


@pytest.mark.parametrize("text", ["a\x00b.pt", "x" * 5000 + ".pt"])
def test_open_with_such_a_path_is_a_checkpoint_error(tmp_path, text):
    from ckptlab.io.sources import as_checkpoint

    for attempt in (lambda: ckptlab.open(tmp_path / text), lambda: as_checkpoint(str(tmp_path / text))):
        with pytest.raises(CheckpointError) as err:
            attempt()
        assert_one_line(err.value)


# -- names of other files: never outside the checkpoint's folder -------------------------------
def test_shards_and_dcp_files_outside_the_checkpoint_folder_are_refused(tmp_path, secret, secret_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for name in ("../outside/secret.txt", str(secret_path), "sub/../../outside/secret.txt"):
        index = ckpt / "model.bin.index.json"
        index.write_text(json.dumps({"weight_map": {"w": name}}))
        with pytest.raises(UnreadableFileError, match="outside the index's folder") as err:
            ckptlab.open(index)
        assert secret.decode() not in assert_one_line(err.value)
    folder = _dcp(tmp_path / "dcp", torch.arange(4.0))

    def elsewhere(md):
        for info in md.storage_data.values():
            info.relative_path = "../outside/secret.txt"

    _rewrite_metadata(folder, elsewhere)
    with pytest.raises(UnreadableFileError, match="outside the checkpoint folder") as err:
        ckptlab.open(folder)
    assert secret.decode() not in assert_one_line(err.value)
