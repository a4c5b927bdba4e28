"""Resource bombs: tiny files asking for huge memory, time or recursion.

Every bomb is written here, then opened (and its tensors loaded) in ONE child process whose
address space is capped with ``resource.setrlimit(RLIMIT_AS)`` a bounded margin above what
``import torch`` + ckptlab already map, and with a per-bomb alarm. A bomb passes when it
ends in the expected one-line ``CheckpointError`` (its message naming the limit that
stopped it; never the "more memory than exists" fallback, which would mean the cap did the
stopping) or, for the few that are legitimate if large, when it reads correctly inside the
cap. A segfault or a hang fails the test and names the bomb that caused it.
"""
from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest

from tests.security.crafted import FLOATS, Ops, as_zip, in_every_form
from tests.paths import REPO

HEADROOM_MB = 384  # address space the child may map beyond what its imports took
PER_BOMB_SECONDS = 20  # hang guard (an alarm), not a benchmark

CHILD = r"""
import json, resource, signal, sys, time

import torch
import ckptlab
from ckptlab.errors import CheckpointError


def vm(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


headroom, per_bomb = int(sys.argv[1]), int(sys.argv[2])
cases = json.loads(sys.stdin.read())
torch.set_num_threads(1)  # thread pools reserve address space per core: start them before the cap
float(torch.arange(1000.0).double().sum())
limit = vm("VmSize") + headroom
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


class Hang(Exception):
    pass


def alarm(*_):
    raise Hang()


signal.signal(signal.SIGALRM, alarm)
for name, path in cases:
    print(json.dumps({"name": name, "started": True}), flush=True)
    t0 = time.perf_counter()
    signal.alarm(per_bomb)
    try:
        ck = ckptlab.open(path)
        total = 0.0
        for key in ck.keys():
            total += float(ck.tensor(key).double().sum())
        result = {"outcome": "ok", "keys": len(ck.keys()), "sum": total}
    except CheckpointError as exc:
        result = {"outcome": "error", "type": type(exc).__name__, "message": str(exc)}
    except Hang:
        result = {"outcome": "hang"}
    except BaseException as exc:
        result = {"outcome": "escaped", "type": type(exc).__name__, "message": str(exc)[:300]}
    finally:
        signal.alarm(0)
    result.update(name=name, seconds=round(time.perf_counter() - t0, 3))
    print(json.dumps(result), flush=True)
"""


def _pkl(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _patch_central_size(path: Path, member: str, size: int) -> None:
    """Rewrite ``member``'s uncompressed size in the zip's central directory (a lying archive)."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    at = data.find(b"PK\x01\x02" + bytes(0))
    while at != -1:
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46: at + 46 + name_len] == name:
            struct.pack_into("<I", data, at + 24, size)
            path.write_bytes(bytes(data))
            return
        at = data.find(b"PK\x01\x02", at + 4)
    raise AssertionError(f"{member} not in the central directory")


def _deflated_storage_zip(path: Path, nbytes: int, declared: int | None = None) -> Path:
    """A torch zip whose one storage member is ``nbytes`` zero bytes, deflated, and whose only
    tensor is the last float of it (reading it inflates everything before it)."""
    numel = (declared or nbytes) // 4
    ops = Ops().empty_dict().str("last").tensor(shape=(1,), stride=(1,), offset=numel - 1, numel=numel).setitem()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", ops.stop())
        with z.open(zipfile.ZipInfo("archive/data/0"), "w", force_zip64=True) as member:
            member._compress_type = zipfile.ZIP_DEFLATED  # noqa: SLF001 - set before any byte is written
            member._compressor = zlib.compressobj(1, zlib.DEFLATED, -15)  # noqa: SLF001
            member._zinfo.compress_type = zipfile.ZIP_DEFLATED  # noqa: SLF001
            zeros = bytes(2**20)
            for _ in range(nbytes // len(zeros)):
                member.write(zeros)
        z.writestr("archive/version", "3\n")
    if declared is not None:
        _patch_central_size(path, "archive/data/0", declared)
    return path


def _bombs(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what must stop it: a regex on the message, or "ok")."""
    rng = random.Random(9)
    bombs: dict[str, tuple[Path, str]] = {}

    def add(name: str, path: Path, expect: str) -> None:
        bombs[name] = (path, expect)

    # a 9-byte pickle naming memo slot 2**32-1 (CPython's unpickler allocates 32 GB for it)
    add("memo_index", _pkl(tmp / "memo.pkl", b"\x80\x02Nr\xff\xff\xff\xff."), "MAX_MEMO_INDEX")
    add("memo_index_zip", as_zip(tmp / "memo.pt", b"\x80\x02Nr\xff\xff\xff\xff."), "MAX_MEMO_INDEX")
    puts = b"".join(b"r" + struct.pack("<I", i) for i in range(1_600_000))
    add("memo_entries", _pkl(tmp / "memo_entries.pkl", b"\x80\x02N" + puts + b"."), "MAX_MEMO_ENTRIES")
    # a dict key nested 150k tuples deep (hashing it recursed in C: a segfault), as .pt too
    deep = b"\x80\x02}N" + b"\x85" * 150_000 + b"Ns."
    add("deep_tuple_key", _pkl(tmp / "deep_key.pkl", deep), "MAX_PICKLE_DEPTH")
    add("deep_tuple_key_zip", as_zip(tmp / "deep_key.pt", deep), "MAX_PICKLE_DEPTH")
    add("deep_lists", _pkl(tmp / "deep_lists.pkl", b"\x80\x02" + b"]" * 200_000 + b"a" * 199_999 + b"."),
        "MAX_PICKLE_DEPTH")
    # shared references: a tuple DAG 90 levels deep costs 2**90 to hash or print
    dag = b"\x80\x02}NN\x86" + b"2\x86" * 90 + b"Ns."
    add("dag_tuple_key", _pkl(tmp / "dag_key.pkl", dag), "MAX_TUPLE_EXPANSION")
    # and a list DAG given to str(): printing it would take 2**90 steps
    lists = b"".join(b"0(h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"lq" + bytes([i]) for i in range(1, 91))
    dag_str = b"\x80\x02cbuiltins\nstr\n]q\x00" + lists + b"\x85R."
    add("dag_str", _pkl(tmp / "dag_str.pkl", dag_str), r"str\(\) of a list .*not allowed")
    # a DAG of dicts around one tensor, and a DAG of lists beside it: read in linear time
    ops = Ops().empty_dict().str("model").empty_dict().str("w").tensor().setitem().put(0)
    for level in range(1, 50):
        ops.pop().empty_dict().str("a").get(level - 1).setitem().str("b").get(level - 1).setitem().put(level)
    ops.setitem().str("extra").empty_list().put(1000)
    for level in range(50):
        ops.pop().empty_list().mark().get(1000 + level).get(1000 + level).appends().put(1001 + level)
    add("dag_containers", as_zip(tmp / "dag_containers.pt", ops.setitem().stop()), "ok")
    # a pickled nn.Module (placeholders) whose every level holds the level below twice, and
    # the same as a TorchScript module: state_dict-style walks visit each module once
    def module_dag(script: bool) -> bytes:
        ops = Ops()
        cls = ("__torch__", "Net") if script else ("somelib.nets", "Net")
        for level in range(60):
            ops.glob(*cls).empty_tuple().raw(b"\x81").empty_dict()
            if script:
                (ops.str("w").tensor().setitem() if level == 0 else
                 ops.str("a").get(level - 1).setitem().str("b").get(level - 1).setitem())
            else:
                ops.str("_parameters").empty_dict()
                if level == 0:
                    ops.str("w").tensor().setitem()
                ops.setitem().str("_buffers").empty_dict().setitem().str("_modules").empty_dict()
                if level:
                    ops.str("a").get(level - 1).setitem().str("b").get(level - 1).setitem()
                ops.setitem()
            ops.build().put(level).pop()
        return ops.get(59).stop()

    from tests.security.crafted import as_torchscript

    add("module_dag", as_zip(tmp / "module_dag.pt", module_dag(False)), "ok")
    add("torchscript_module_dag", as_torchscript(tmp / "module_dag.jit", module_dag(True)), "ok")
    # 6M one-byte references inside a deflated data.pkl that compresses only ~2x (within the
    # ratio limit): they would make a list of 6M items, 48 MB, from a 7 MB file
    memo = b"".join(b"K" + bytes([i]) + b"q" + bytes([i]) + b"0" for i in range(256))
    gets = bytearray(12_000_000)
    gets[0::2], gets[1::2] = b"h" * 6_000_000, rng.randbytes(6_000_000)
    dup_pkl = b"\x80\x02" + memo + b"](" + bytes(gets) + b"e."
    add("references_in_deflated_pickle",
        as_zip(tmp / "refs.pt", dup_pkl, compress=zipfile.ZIP_DEFLATED), "MAX_PICKLE_OBJECTS")
    # calls that multiply what the pickle paid for: list(L) of one 1M-item list, 20 times;
    # tuple() of a 50 MB string (400 MB of references)
    big = b"](" + b"N" * 1_000_000 + b"eq\x00" + b"cbuiltins\nlist\nq\x01" + b"0h\x01h\x00\x85R" * 20 + b"."
    add("copies_of_a_big_list", _pkl(tmp / "copies.pkl", b"\x80\x02" + big), "MAX_PICKLE_OBJECTS")
    text = b"cbuiltins\ntuple\n\x8d" + struct.pack("<Q", 50 * 2**20) + b"x" * (50 * 2**20) + b"\x85R."
    add("tuple_of_a_string", _pkl(tmp / "tuple_str.pkl", b"\x80\x04" + text), r"tuple\(\) of a str")
    # numpy: an object-dtype array of 10**10 items (numpy allocates before reading its data)
    np_obj = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R"
              b"(K\x01\x8a\x05\x00\xe4\x0bT\x02\x85cnumpy\ndtype\nX\x02\x00\x00\x00O8\x89\x88\x87R"
              b"(K\x03X\x01\x00\x00\x00|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tb\x89]tb.")
    add("numpy_object_dtype", _pkl(tmp / "np_obj.pkl", np_obj), "NUMPY_DTYPE_KINDS")
    # views: stride 0 repeating one float 2**40 times; sizes past 2**64
    add("stride0_view", as_zip(tmp / "stride0.pt", Ops().state_dict(
        w={"shape": (2**20, 2**20), "stride": (0, 0)}).stop()), "MAX_VIEW_EXPANSION")
    add("huge_sizes", as_zip(tmp / "huge.pt", Ops().state_dict(
        w={"shape": (0, 2**70), "stride": (2**70, 1)}).stop()), "MAX_TENSOR_DIM_SIZE")
    add("huge_integer", _pkl(tmp / "long.pkl", b"\x80\x02\x8b" + struct.pack("<i", 50_000_000) + b"\x01" * 100 + b"."),
        "MAX_INT_BYTES")
    add("huge_bytes_length", _pkl(tmp / "bytes8.pkl", b"\x80\x04\x8e" + struct.pack("<Q", 2**62) + b"xx."),
        "MAX_PICKLE_BYTES")
    # compressed storage members: one lying about its size (3 GB from 1 MB), and one honest
    # 512 MiB member whose last float is read in bounded memory (less than the member's size)
    add("deflated_member_too_big", _deflated_storage_zip(tmp / "lying.pt", 2**20, declared=3 * 2**30),
        "MAX_MEMBER_INFLATED_BYTES")
    add("tensor_at_end_of_deflated_member", _deflated_storage_zip(tmp / "deflated.pt", 2**29), "ok")
    # the memo and deep-key bombs as a prefix of a real checkpoint, in every container form
    prefixes = {
        "memo_index": (lambda ops: ops.none().raw(b"r\xff\xff\xff\xff").pop(), "MAX_MEMO_INDEX"),
        "deep_key": (lambda ops: ops.empty_dict().none().raw(b"\x85" * 150_000).none().setitem().pop(),
                     "MAX_PICKLE_DEPTH"),
    }
    for name, (prefix, limit) in prefixes.items():
        (tmp / name).mkdir()
        for form, path in in_every_form(tmp / name, name, prefix).items():
            add(f"{name}_as_{form}", path, limit)
    # an index naming itself, and two naming each other
    (tmp / "self").mkdir()
    (tmp / "self" / "model.bin.index.json").write_text(json.dumps({"weight_map": {"w": "model.bin.index.json"}}))
    add("index_names_itself", tmp / "self" / "model.bin.index.json", "MAX_INDEX_DEPTH")
    (tmp / "pair").mkdir()
    (tmp / "pair" / "a.index.json").write_text(json.dumps({"weight_map": {"w": "b.index.json"}}))
    (tmp / "pair" / "b.index.json").write_text(json.dumps({"weight_map": {"w": "a.index.json"}}))
    add("indexes_name_each_other", tmp / "pair" / "a.index.json", "MAX_INDEX_DEPTH")
    return bombs


def test_every_bomb_ends_in_its_limit_error_in_bounded_memory(tmp_path):
    bombs = _bombs(tmp_path)
    cases = [(name, str(path)) for name, (path, _) in bombs.items()]
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(HEADROOM_MB * 2**20), str(PER_BOMB_SECONDS)],
        input=json.dumps(cases), capture_output=True, text=True, cwd=REPO,
        timeout=PER_BOMB_SECONDS * len(cases) + 60, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
             "MALLOC_ARENA_MAX": "2"})
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    results = {r["name"]: r for r in lines if "outcome" in r}
    started = [r["name"] for r in lines if r.get("started")]
    assert proc.returncode == 0, f"child died (rc {proc.returncode}) during {started[-1:]}: {proc.stderr[-2000:]}"
    failures = []
    for name, (_path, expect) in bombs.items():
        r = results.get(name)
        if r is None:
            failures.append(f"{name}: no result")
        elif expect == "ok":
            if r["outcome"] != "ok":
                failures.append(f"{name}: expected to read, got {r}")
        elif r["outcome"] != "error":
            failures.append(f"{name}: {r}")
        else:
            message = r["message"]
            import re

            if not re.search(expect, message) or "more memory than exists" in message:
                failures.append(f"{name}: expected /{expect}/, got {message!r}")
            if not (message.isprintable() and len(message) <= 300):
                failures.append(f"{name}: message not one printable line <= 300 chars: {message!r}")
    print({name: r["seconds"] for name, r in results.items()})
    assert not failures, "\n".join(failures)
    for name in ("dag_containers", "module_dag", "torchscript_module_dag"):
        assert results[name]["keys"] == 1 and results[name]["sum"] == sum(range(FLOATS)), results[name]
    assert results["tensor_at_end_of_deflated_member"]["sum"] == 0.0


@pytest.mark.parametrize("depth", [10, 400])
def test_shallow_nesting_and_sharing_within_the_limits_read(tmp_path, depth):
    """The limits are far from real files: nesting of a few hundred levels still reads."""
    import ckptlab

    data = b"\x80\x02}X\x01\x00\x00\x00w" + Ops().tensor().data[2:] + b"sX\x01\x00\x00\x00kN" + b"\x85" * depth + b"s."
    ck = ckptlab.open(as_zip(tmp_path / "ok.pt", data))
    assert ck.keys() == ["w"]
