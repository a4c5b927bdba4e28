"""Hostile checkpoints, built opcode by opcode (``pickle`` itself refuses to write most of them).

``Ops`` writes a pickle one opcode at a time. The ``as_*`` functions wrap an object pickle
in each container format ckptlab reads: a torch zip, a legacy torch file, a TorchScript
archive, a torch.distributed.checkpoint folder and a sharded set (an index naming a zip
shard). Every crafted tensor refers to storage ``"0"``: ``FLOATS`` float32 values.
"""
from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
from pathlib import Path

import torch

FLOATS = 8  # elements of the one storage every crafted file carries
STORAGE_BYTES = torch.arange(FLOATS, dtype=torch.float32).numpy().tobytes()


class Ops:
    """A pickle written opcode by opcode (protocol 2 header)."""

    def __init__(self, proto: int = 2, legacy: bool = False):
        self.data = bytearray(b"\x80" + bytes([proto]))
        self.legacy = legacy  # tensors name storages the legacy way (a 6-item persistent id)

    def raw(self, data: bytes) -> "Ops":
        self.data += data
        return self

    def glob(self, module: str, name: str) -> "Ops":
        return self.raw(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

    def str(self, text: str) -> "Ops":
        encoded = text.encode("utf-8", "surrogatepass")
        return self.raw(b"X" + struct.pack("<I", len(encoded)) + encoded)

    def int(self, value: int) -> "Ops":
        if 0 <= value < 256:
            return self.raw(b"K" + bytes([value]))
        if -2**31 <= value < 2**31:
            return self.raw(b"J" + struct.pack("<i", value))
        encoded = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
        return self.raw(b"\x8a" + bytes([len(encoded)]) + encoded)

    def none(self) -> "Ops":
        return self.raw(b"N")

    def false(self) -> "Ops":
        return self.raw(b"\x89")

    def mark(self) -> "Ops":
        return self.raw(b"(")

    def tuple(self) -> "Ops":
        return self.raw(b"t")

    def empty_tuple(self) -> "Ops":
        return self.raw(b")")

    def tuple1(self) -> "Ops":
        return self.raw(b"\x85")

    def tuple2(self) -> "Ops":
        return self.raw(b"\x86")

    def empty_dict(self) -> "Ops":
        return self.raw(b"}")

    def empty_list(self) -> "Ops":
        return self.raw(b"]")

    def setitem(self) -> "Ops":
        return self.raw(b"s")

    def appends(self) -> "Ops":
        return self.raw(b"e")

    def reduce(self) -> "Ops":
        return self.raw(b"R")

    def build(self) -> "Ops":
        return self.raw(b"b")

    def pop(self) -> "Ops":
        return self.raw(b"0")

    def dup(self) -> "Ops":
        return self.raw(b"2")

    def put(self, index: int) -> "Ops":
        return self.raw(b"r" + struct.pack("<I", index))

    def get(self, index: int) -> "Ops":
        return self.raw(b"j" + struct.pack("<I", index))

    def tuple_of_ints(self, values) -> "Ops":
        self.mark()
        for v in values:
            self.int(v)
        return self.tuple()

    def tensor(self, shape=(FLOATS,), stride=(1,), offset: int = 0, numel: int = FLOATS,
               storage: str = "FloatStorage", legacy: bool | None = None) -> "Ops":
        """``_rebuild_tensor_v2(storage "0", offset, shape, stride, False, OrderedDict())``."""
        self.glob("torch._utils", "_rebuild_tensor_v2")
        self.mark()
        self.mark().str("storage").glob("torch", storage).str("0").str("cpu").int(numel)
        if self.legacy if legacy is None else legacy:
            self.none()
        self.tuple().raw(b"Q")  # BINPERSID
        self.int(offset).tuple_of_ints(shape).tuple_of_ints(stride).false()
        self.glob("collections", "OrderedDict").empty_tuple().reduce()
        self.tuple().reduce()
        return self

    def state_dict(self, **tensors) -> "Ops":
        """``{"w": <tensor>}`` (keyword -> tensor kwargs dict) as the object."""
        self.empty_dict()
        for key, kwargs in tensors.items():
            self.str(key)
            self.tensor(**kwargs)
            self.setitem()
        return self

    def stop(self) -> bytes:
        return bytes(self.data + b".")


def plain_state_dict(legacy: bool = False) -> Ops:
    return Ops().state_dict(w={"legacy": legacy})


# -- containers ---------------------------------------------------------------------------------
def as_zip(path: Path, data_pkl: bytes, extra: dict[str, bytes] | None = None,
           compress: int = zipfile.ZIP_STORED) -> Path:
    """A torch zip archive whose data.pkl is ``data_pkl``, with storage ``0``."""
    with zipfile.ZipFile(path, "w", compress) as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/data/0", STORAGE_BYTES)
        for name, data in (extra or {}).items():
            z.writestr(f"archive/{name}", data)
        z.writestr("archive/version", "3\n")
    return path


def as_legacy(path: Path, object_pkl: bytes) -> Path:
    """A legacy torch file: magic, protocol, system info, ``object_pkl``, keys, storage ``0``."""
    out = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, out, protocol=2)
    pickle.dump(1001, out, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True,
                 "type_sizes": {"short": 2, "int": 4, "long": 4}}, out, protocol=2)
    out.write(object_pkl)
    pickle.dump(["0"], out, protocol=2)
    out.write(struct.pack("<q", FLOATS) + STORAGE_BYTES)
    path.write_bytes(out.getvalue())
    return path


def as_torchscript(path: Path, data_pkl: bytes) -> Path:
    """A TorchScript archive: constants.pkl and code/ beside ``data_pkl``."""
    return as_zip(path, data_pkl, {
        "constants.pkl": pickle.dumps((), protocol=2),
        "code/__torch__.py": b"class Net(Module):\n  __parameters__ = [\"w\", ]\n",
    })


def scripted_module(prefix: Ops | None = None) -> Ops:
    """``__torch__.Net`` with state ``{"w": <tensor>}`` (after ``prefix``'s opcodes)."""
    ops = prefix or Ops()
    ops.glob("__torch__", "Net").empty_tuple().raw(b"\x81")  # NEWOBJ
    ops.empty_dict().str("w").tensor().setitem().build()
    return ops


def as_dcp(folder: Path, metadata_pkl: bytes) -> Path:
    """A DCP folder whose .metadata is ``metadata_pkl`` (and one data file)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".metadata").write_bytes(metadata_pkl)
    (folder / "__0_0.distcp").write_bytes(b"\0" * 64)
    return folder


def as_sharded(folder: Path, shard_pkl: bytes) -> Path:
    """``pytorch_model.bin.index.json`` naming one torch zip shard whose data.pkl is ``shard_pkl``."""
    folder.mkdir(parents=True, exist_ok=True)
    as_zip(folder / "pytorch_model-00001-of-00001.bin", shard_pkl)
    index = folder / "pytorch_model.bin.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": {"w": "pytorch_model-00001-of-00001.bin"}}))
    return index


def in_every_form(tmp_path: Path, name: str, prefix_ops) -> dict[str, Path]:
    """The hostile opcodes ``prefix_ops(ops)`` run before a normal object, in each format.

    ``prefix_ops`` writes opcodes that leave the stack as it found them (e.g. a BUILD on
    some global, then POP), so whatever follows is a well-formed checkpoint."""
    def body(legacy: bool = False) -> bytes:
        ops = Ops(legacy=legacy)
        prefix_ops(ops)
        return ops.state_dict(w={}).stop()

    def script() -> bytes:
        ops = Ops()
        prefix_ops(ops)
        return scripted_module(ops).stop()

    def metadata() -> bytes:
        ops = Ops()
        prefix_ops(ops)
        ops.glob("torch.distributed.checkpoint.metadata", "Metadata").empty_tuple().raw(b"\x81")
        ops.empty_dict().str("state_dict_metadata").empty_dict().setitem()
        ops.str("storage_data").empty_dict().setitem().build()
        return ops.stop()

    return {
        "zip": as_zip(tmp_path / f"{name}.pt", body()),
        "legacy": as_legacy(tmp_path / f"{name}_legacy.pt", body(legacy=True)),
        "torchscript": as_torchscript(tmp_path / f"{name}.jit", script()),
        "dcp": as_dcp(tmp_path / f"{name}_dcp", metadata()),
        "sharded": as_sharded(tmp_path / f"{name}_sharded", body()),
    }
