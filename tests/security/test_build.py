"""BUILD and shared objects: a file can give state only to its own inert placeholders.

Each payload sets state (pickle's BUILD) on something the unpickler hands out: a shared
storage-type marker (which used to make every later float32 file read as int32), an
allowlisted function (its ``__defaults__``), a LazyTensor (its file span, to copy a server
file into an output), a torch dtype, a placeholder *class*. Each is tried in every container
form; each must end in a one-line CheckpointError, create nothing, leak nothing, and leave
later files reading exactly as written.
"""
from __future__ import annotations

import dataclasses
import types

import pytest
import torch

import ckptlab
from ckptlab.errors import CheckpointError, UnsafePickleError
from ckptlab.io.formats import allowlist
from ckptlab.merge.planning import remap
from tests.security.conftest import assert_one_line, assert_reads_back_bit_identical
from tests.security.crafted import FLOATS, Ops, as_zip, in_every_form


def _state_on(global_ops, state_ops):
    """Opcodes: push a global (or object), BUILD it with a state, POP it (stack unchanged)."""
    def write(ops: Ops) -> None:
        global_ops(ops)
        state_ops(ops)
        ops.build().pop()
    return write


def _dtype_state(ops: Ops) -> None:
    ops.empty_dict().str("dtype").glob("torch", "int32").setitem()


def _class_state(ops: Ops) -> None:  # (None, {"__class__": DoubleStorage}): slot state
    ops.none().empty_dict().str("__class__").glob("torch", "DoubleStorage").setitem().tuple2()


def _defaults_state(secret_path):
    def write(ops: Ops) -> None:
        ops.none().empty_dict().str("__defaults__").mark().str(str(secret_path)).tuple().setitem().tuple2()
    return write


def _span_state(secret_path):
    def write(ops: Ops) -> None:
        ops.none().empty_dict().str("_span").mark().str(str(secret_path)).int(0).int(4 * FLOATS).tuple()
        ops.setitem().tuple2()
    return write


PAYLOADS = {
    "storage_marker_dtype": lambda secret_path: _state_on(lambda o: o.glob("torch", "FloatStorage"), _dtype_state),
    "storage_marker_class": lambda secret_path: _state_on(lambda o: o.glob("torch", "DoubleStorage"), _class_state),
    "allowed_function_defaults": lambda secret_path: _state_on(
        lambda o: o.glob("torch.jit._pickle", "build_intlist"), _defaults_state(secret_path)),
    "lazy_tensor_span": lambda secret_path: _state_on(lambda o: o.tensor(), _span_state(secret_path)),
    "torch_dtype": lambda secret_path: _state_on(lambda o: o.glob("torch", "float32"), _dtype_state),
    "placeholder_class": lambda secret_path: _state_on(
        lambda o: o.glob("somelib.models", "Net"), lambda o: o.empty_dict().str("refused").str("").setitem()),
    "type_marker": lambda secret_path: _state_on(lambda o: o.glob("torch", "FloatTensor"), _dtype_state),
}
FORMS = ("zip", "legacy", "torchscript", "dcp", "sharded")


@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_build_on_anything_but_a_placeholder_is_refused_in_every_form(tmp_path, payload, secret, secret_path,
                                                                      clean_files):
    forms = in_every_form(tmp_path, payload, PAYLOADS[payload](secret_path))
    assert sorted(forms) == sorted(FORMS)
    if payload == "lazy_tensor_span":
        del forms["dcp"]  # a DCP .metadata names no storages, so it cannot make a tensor
    out = tmp_path / "out"
    out.mkdir()
    for form, path in forms.items():
        with pytest.raises(UnsafePickleError, match="refusing BUILD") as err:
            ckptlab.open(path)
        message = assert_one_line(err.value)
        assert secret.decode() not in message
        if form != "dcp":  # a DCP folder without tensors cannot be a remap source anyway
            with pytest.raises(CheckpointError):
                remap(path, path, out / f"{form}.safetensors")
        assert_reads_back_bit_identical(clean_files)
    assert list(out.iterdir()) == []  # nothing written, so no secret byte anywhere


def test_no_marker_file_and_no_secret_from_a_span_payload_after_remap(tmp_path, secret, secret_path):
    """Remap of the span payload (the one that used to copy a server file into the output)."""
    marker = tmp_path / "pwned"
    ops = Ops()
    PAYLOADS["lazy_tensor_span"](secret_path)(ops)
    path = as_zip(tmp_path / "span.pt", ops.state_dict(w={}).stop())
    for suffix in (".pt", ".safetensors"):
        target = tmp_path / f"remapped{suffix}"
        with pytest.raises(CheckpointError):
            remap(path, path, target)
        assert not target.exists()
    assert not marker.exists()
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and p.parent.name != "outside" and secret in p.read_bytes()]
    assert leaked == []


def test_the_same_file_without_its_payload_reads(tmp_path):
    """The body every payload precedes is a valid checkpoint: the refusal is the payload's."""
    for form, path in in_every_form(tmp_path, "benign", lambda ops: None).items():
        if form == "dcp":
            continue
        ck = ckptlab.open(path)
        assert torch.equal(ck.tensor("w"), torch.arange(float(FLOATS)))


def test_build_on_a_placeholder_stores_state_as_data_only(tmp_path):
    """A placeholder given a state with attribute-like keys keeps them as data, never as attributes."""
    ops = Ops().glob("somelib.models", "Net").empty_tuple().raw(b"\x81")
    ops.empty_dict().str("__class__").str("x").setitem().str("attributes").str("y").setitem()
    ops.str("w").tensor().setitem().build()
    ck = ckptlab.open(as_zip(tmp_path / "obj.pt", ops.stop()))
    assert torch.equal(ck.tensor("w"), torch.arange(float(FLOATS)))
    from ckptlab.io.formats import read

    root = read(tmp_path / "obj.pt").root
    assert type(root).__name__ == "Net" and callable(root.attributes)  # not replaced by "y"
    assert root.attributes()["attributes"] == "y" and root.state["__class__"] == "x"


def test_every_shared_value_is_immutable_and_no_function_is_handed_out():
    """By design, not by payload: what ``find_class`` can return is a frozen marker, an
    immutable torch value or an ``Allowed`` handle; never a function, never a mutable object."""
    immutable_torch = (torch.dtype, torch.layout, torch.memory_format, torch.qscheme)
    for key, value in allowlist.ALLOWED.items():
        assert not isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type)), key
        if isinstance(value, immutable_torch):
            continue
        assert dataclasses.is_dataclass(value) and type(value).__dataclass_params__.frozen, key
        assert not hasattr(value, "__dict__"), key
        with pytest.raises(dataclasses.FrozenInstanceError):
            value.name = "changed"
