"""Ways to write transposed tensors to a file, side by side: which one the writer should use.

    python bench/bench_write_paths.py [--gb 1.0] [--dir DIR] [--repeats 5] [--ways NAME,NAME]

Builds the GPT-2-style source of ``bench_convert.py`` (``--gb``), then writes only its
Conv1D weights, transposed (what a remap with the transpose recipe computes), to one output
file in each of these ways, in shuffled interleaved rounds beside ``cp`` of the source:

- ``pieces-64K`` ... ``pieces-1M``: ``.contiguous()`` of the transposed view,
  then ``writers.sink.Sink`` with ``WRITE_PIECE`` at that size (128 KB is the writer's);
- ``whole``: the same, one ``pwrite`` per tensor (the writer before pieces);
- ``aligned-128K``: 128 KB pieces that end on multiples of 128 KB in the file;
- ``staged-128K``: each view copied into one buffer reused for the whole write, then 128 KB
  pieces (the writer's way, ``writers/staging.py``);
- ``mapped``: the output ``ftruncate``-d to size, ``mmap``-ed shared, and each transposed view
  copied straight into a tensor over the mapping (one copy instead of two);
  ``mapped-populate``: each tensor's range first faulted in by one ``madvise``
  (``MADV_POPULATE_WRITE``); ``mapped-reserve-populate``: the file's blocks allocated first
  (``posix_fallocate``); ``mapped-per-tensor``: the file extended and mapped tensor by tensor,
  populated (the writer tried at commit 6825070).

``--ways`` runs only the ways named (``cp`` always runs).

First, in memory (no file): torch's ``copy_`` of a (1024, 4096) float32 tensor as it is, of its
whole transposed view (torch's blocked transpose), and of the view in slabs of 256 rows (what
a hand-tiled transpose would call: torch's generic strided copy).

Every way starts at the same unaligned offset (after a safetensors-like header) and reads
the source through a private map, as the writer does. Printed: each round's wall / CPU
seconds and the median CPU per way; CPU is the figure a shared machine inflates least.
"""
from __future__ import annotations

import argparse
import json
import mmap
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

from bench_convert import MAKE_GPT2, machine  # noqa: E402
from ckptlab.io.writers import sink, staging  # noqa: E402

FLIP = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")
HEADER = 10_008  # where the data starts: not a multiple of a page, as after a real header


def transposed_views(src: Path):
    """Each Conv1D weight of ``src`` as a transposed view over a private map of its bytes."""
    with open(src, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    base = 8 + n
    fd = os.open(src, os.O_RDONLY)
    try:
        for key, v in header.items():
            if key == "__metadata__" or not key.endswith(FLIP):
                continue
            start, end = v["data_offsets"]
            offset, nbytes = base + start, end - start
            page = offset - offset % mmap.ALLOCATIONGRANULARITY
            mm = mmap.mmap(fd, nbytes + offset - page, flags=mmap.MAP_PRIVATE,
                           prot=mmap.PROT_READ | mmap.PROT_WRITE, offset=page)
            t = torch.frombuffer(mm, dtype=torch.float32, count=nbytes // 4, offset=offset - page)
            yield t.view(v["shape"]).t()
    finally:
        os.close(fd)


def converted_bytes(src: Path) -> int:
    return sum(t.numel() * 4 for t in transposed_views(src))


def with_sink(src: Path, out: Path, piece: int, aligned: bool = False) -> None:
    old = sink.WRITE_PIECE
    sink.WRITE_PIECE = piece
    try:
        with open(out, "w+b") as f:
            f.write(b" " * HEADER)
            s = sink.Sink(f)
            for view in transposed_views(src):
                data = memoryview(view.contiguous().reshape(-1).view(torch.uint8).numpy()).cast("B")
                if aligned:  # each write ends on a multiple of ``piece`` in the file
                    done = 0
                    while done < len(data):
                        n = min(len(data) - done, piece - s.pos % piece)
                        s.write(data[done:done + n])
                        done += n
                else:
                    s.write(data)
                del data
            s.flush()
    finally:
        sink.WRITE_PIECE = old


MADV_POPULATE_WRITE = 23  # Linux 5.14+: fault the range in writable, in one call


def mapped(src: Path, out: Path, total: int, populate: bool = False, reserve: bool = False) -> None:
    """``populate``: each tensor's range is faulted in by one ``madvise`` before the copy;
    ``reserve``: the output's blocks are allocated first (``posix_fallocate``)."""
    with open(out, "w+b") as f:
        f.truncate(HEADER + total)
        if reserve:
            os.posix_fallocate(f.fileno(), 0, HEADER + total)
        with mmap.mmap(f.fileno(), HEADER + total, flags=mmap.MAP_SHARED,
                       prot=mmap.PROT_READ | mmap.PROT_WRITE) as mm:
            pos = HEADER
            for view in transposed_views(src):
                nbytes = view.numel() * 4
                if populate:
                    page = pos - pos % mmap.PAGESIZE
                    mm.madvise(MADV_POPULATE_WRITE, page, pos + nbytes - page)
                dest = torch.frombuffer(mm, dtype=torch.float32, count=view.numel(), offset=pos)
                dest.view(view.shape).copy_(view)
                pos += nbytes
                del dest


def mapped_per_tensor(src: Path, out: Path) -> None:
    """The writer tried at 6825070 (``writers/placed.py``): per tensor, the file extended,
    the tensor's range mapped and faulted in (``MADV_POPULATE_WRITE``), the view copied in."""
    with open(out, "w+b") as f:
        f.write(b" " * HEADER)
        pos = HEADER
        for view in transposed_views(src):
            nbytes = view.numel() * 4
            base = pos - pos % mmap.ALLOCATIONGRANULARITY
            f.truncate(pos + nbytes)
            with mmap.mmap(f.fileno(), pos + nbytes - base, flags=mmap.MAP_SHARED,
                           prot=mmap.PROT_READ | mmap.PROT_WRITE, offset=base) as mm:
                page = pos - pos % mmap.PAGESIZE
                mm.madvise(MADV_POPULATE_WRITE, page - base, pos + nbytes - page)
                dest = torch.frombuffer(mm, dtype=torch.float32, count=view.numel(), offset=pos - base)
                dest.view(view.shape).copy_(view)
                del dest
            pos += nbytes


def staged(src: Path, out: Path) -> None:
    """The writer (``writers/staging.py``): each view copied into one reused buffer, then
    written in ``WRITE_PIECE`` pieces."""
    with open(out, "w+b") as f:
        f.write(b" " * HEADER)
        s, buffer = sink.Sink(f), staging.Staging()
        for view in transposed_views(src):
            s.write(buffer.bytes_of(view))
        s.flush()


def transpose_copies() -> None:
    src, out, flat = torch.randn(1024, 4096), torch.empty(4096, 1024), torch.empty(1024 * 4096)

    def best(fn) -> float:
        times = []
        for _ in range(15):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times) * 1e3

    def slabs() -> None:
        for r in range(0, 4096, 256):
            out[r:r + 256].copy_(src.t()[r:r + 256])

    print(f"copy_ of 16 MB, best of 15: as it is {best(lambda: flat.copy_(src.view(-1))):.1f} ms; "
          f"whole transposed view {best(lambda: out.copy_(src.t())):.1f} ms; "
          f"transposed in 256-row slabs {best(slabs):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--dir", default=None, help="where the temp dir goes (default: the system's)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ways", default=None, help="comma-separated names of the ways to run (default: all)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    transpose_copies()
    work = Path(tempfile.mkdtemp(prefix="ckptlab-bench-write-", dir=args.dir))
    try:
        src, out = work / "gpt2.safetensors", work / "out.bin"
        subprocess.run([sys.executable, "-c", MAKE_GPT2, str(src), str(args.gb)], check=True, capture_output=True)
        total = converted_bytes(src)
        ways = {
            "cp (whole source)": lambda: subprocess.run(["cp", "--reflink=never", str(src), str(out)], check=True),
            "pieces-64K": lambda: with_sink(src, out, 64 << 10),
            "pieces-128K": lambda: with_sink(src, out, 128 << 10),
            "pieces-256K": lambda: with_sink(src, out, 256 << 10),
            "pieces-512K": lambda: with_sink(src, out, 512 << 10),
            "pieces-1M": lambda: with_sink(src, out, 1 << 20),
            "whole": lambda: with_sink(src, out, 1 << 62),
            "aligned-128K": lambda: with_sink(src, out, 128 << 10, aligned=True),
            "mapped": lambda: mapped(src, out, total),
            "mapped-populate": lambda: mapped(src, out, total, populate=True),
            "mapped-reserve-populate": lambda: mapped(src, out, total, populate=True, reserve=True),
            "mapped-per-tensor": lambda: mapped_per_tensor(src, out),
            "staged-128K": lambda: staged(src, out),
        }
        if args.ways:
            ways = {name: way for name, way in ways.items() if name.startswith("cp") or name in args.ways.split(",")}
        print(f"source {src.stat().st_size / 1e6:.0f} MB; transposed weights written: {total / 1e6:.0f} MB")
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
        for _ in range(args.repeats):
            for name in random.sample(list(ways), len(ways)):
                out.unlink(missing_ok=True)
                os.sync()
                r0, c0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                ways[name]()
                wall = time.perf_counter() - t0
                r1, c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = sum(getattr(b, f) - getattr(a, f) for a, b in ((r0, r1), (c0, c1))
                          for f in ("ru_utime", "ru_stime"))
                runs[name].append((wall, cpu))
        for name, rs in runs.items():
            print(f"{name:18s} median CPU {statistics.median(c for _, c in rs):.2f} s, best wall "
                  f"{min(w for w, _ in rs):.2f} s | rounds (wall/CPU): " + " ".join(f"{w:.2f}/{c:.2f}" for w, c in rs))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
