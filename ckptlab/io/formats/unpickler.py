"""The restricted unpickler every pickle in ckptlab goes through: our own pickle machine.

``pickle.Unpickler`` imports and calls whatever the file names, and even with its
``find_class`` overridden it still lets the file ``setattr`` on any object it can reach
(BUILD), grow its memo to any index the file names, and hash keys nested or shared beyond
what the C stack survives. So ckptlab runs pickles on this small machine instead, whose
rules make a file's bytes *data*:

- Globals resolve through ``allowlist``: *values* (dtypes, immutable markers), *pure
  callables* (each builds a fresh object from its arguments: tensor rebuilds give
  ``LazyTensor``s) and, for anything else, inert placeholder classes. Nothing is imported.
- Calls (REDUCE, NEWOBJ, OBJ, INST) run only allowlisted callables or placeholder classes.
- BUILD stores state only in a placeholder (as data). On a plain dict (the ``_metadata``
  torch attaches to a state_dict) it is dropped; on anything else it is refused.
- SETITEM(S)/APPEND(S)/ADDITEMS only fill the dicts, lists and sets this pickle made, or
  placeholders. No opcode can change an object that outlives the file.
- Every quantity the file controls is bounded by ``limits`` (objects, memo index and size,
  nesting depth, tuple hashing cost, string and integer sizes), checked as it is read,
  without recursion.

Storages are resolved by the reader's ``persistent_load`` callback, so no tensor bytes are
touched here.
"""
from __future__ import annotations

import codecs
import io
import itertools
import os
import struct
from collections import Counter, OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from ckptlab.errors import CheckpointError, UnreadableFileError, UnsafePickleError, quote
from ckptlab.io import limits
from ckptlab.io.formats.allowlist import ALLOWED, Allowed, StorageType, normalise, refusal_reason
from ckptlab.io.formats.base import LazyTensor
from ckptlab.io.formats.placeholder import Placeholder, make_placeholder_class
from ckptlab.io.formats.storage import StorageRef

__all__ = ["PersistentLoad", "RestrictedUnpickler", "restricted_load"]

PersistentLoad = Callable[[Any], Any]

# Containers this machine may fill after making them (exact types: no subclass with hooks).
_DICTS = (dict, OrderedDict, Counter)
_CONTAINERS = (tuple, list, dict, set, frozenset, OrderedDict, Counter)
_MEASURED = (tuple, list, set, frozenset, dict)  # isinstance: subclasses (torch.Size) too
_TEXT = (str, bytes, bytearray)
# Exact types that are no container, no placeholder and no string: a call returning one has
# nothing to charge.
_ATOMS = frozenset({int, float, bool, type(None), complex, LazyTensor, StorageRef, StorageType, torch.dtype})
# ... and never recorded in ``_shape``: a tuple of only these (and strings) has depth 1 and
# costs its length to hash.
_FLAT = _ATOMS | {str, bytes}


_U32 = struct.Struct("<I").unpack
_I32, _U16, _F64, _U32S, _U64 = (struct.Struct(f) for f in ("<i", "<H", ">d", "<I", "<Q"))


class _Stop(Exception):
    def __init__(self, value: Any):
        self.value = value


class _Corrupt(Exception):
    """Malformed opcode stream; becomes an ``UnreadableFileError`` naming the file."""


class RestrictedUnpickler:
    """Runs one pickle; records every class it stood in for in ``placeholders``.

    Same use as ``pickle.Unpickler``: ``RestrictedUnpickler(file, persistent_load).load()``.
    All state is per instance (one pickle), so nothing a file does survives into the next.
    """

    def __init__(self, file: IO[bytes], persistent_load: PersistentLoad | None = None):
        self._file = file
        self._read = file.read
        self._readline = file.readline
        self._end = _end_of(file)
        self._persistent = persistent_load
        self._classes: dict[tuple[str, str], type] = {}
        self.placeholders: set[str] = set()
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        # id -> (object, nesting depth, tuple expansion) for containers that hold containers;
        # the object is kept so its id cannot be reused by another during this load.
        self._shape: dict[int, tuple[Any, int, int]] = {}
        self._made_items = 0  # items of containers returned by calls (see ``_made``)
        self._made_bytes = 0  # characters/bytes of strings returned by calls
        self._key_chars = 0  # characters of every str dict key set (MAX_TOTAL_KEY_CHARS)

    # -- the loop -------------------------------------------------------------------------
    def load(self) -> Any:
        read, dispatch, memo = self._read, _DISPATCH, self.memo
        budget = limits.MAX_PICKLE_OBJECTS
        max_index, max_entries = limits.MAX_MEMO_INDEX, limits.MAX_MEMO_ENTRIES
        try:
            while True:
                code = read(1)
                if not code:
                    raise EOFError
                budget -= 1
                if budget < 0:
                    raise limits.exceeded("pickle opcodes", f"> {limits.MAX_PICKLE_OBJECTS:,}", "MAX_PICKLE_OBJECTS")
                if code == b"r":  # LONG_BINPUT (a quarter of torch's opcodes), with ``_put``, inline
                    data = read(4)
                    if len(data) != 4:
                        raise EOFError
                    index = _U32(data)[0]
                    if index > max_index or (index not in memo and len(memo) >= max_entries) or not self.stack:
                        self._put(index)  # raises the error that applies
                    memo[index] = self.stack[-1]
                    continue
                op = dispatch[code[0]]
                if op is None:
                    raise _Corrupt(f"unknown opcode {code!r}")
                op(self)
        except _Stop as stop:
            return stop.value

    # -- reading ----------------------------------------------------------------------------
    def _bytes(self, n: int) -> bytes:
        """Exactly ``n`` bytes of the pickle (checked against what is left before reading)."""
        if n < 0:
            raise _Corrupt("negative length")
        if n > limits.MAX_PICKLE_BYTES:
            raise limits.exceeded("a pickled string or bytes", f"{n:,} bytes", "MAX_PICKLE_BYTES")
        if self._end is not None and n > self._end - self._file.tell():
            raise EOFError
        data = self._read(n)
        if len(data) != n:
            raise EOFError
        return data

    def _line(self) -> bytes:
        line = self._readline(limits.MAX_LINE_CHARS + 1)
        if not line.endswith(b"\n"):
            if len(line) > limits.MAX_LINE_CHARS:
                raise limits.exceeded("a text line in the pickle", f"> {limits.MAX_LINE_CHARS} chars", "MAX_LINE_CHARS")
            raise EOFError
        return line[:-1]

    def _unpack(self, fixed: struct.Struct) -> Any:
        """A fixed-size argument (1 to 8 bytes: nothing to bound before reading it)."""
        data = self._read(fixed.size)
        if len(data) != fixed.size:
            raise EOFError
        return fixed.unpack(data)[0]

    def _byte(self) -> int:
        data = self._read(1)
        if not data:
            raise EOFError
        return data[0]

    # -- shape accounting (depth and hashing cost), without recursion -----------------------
    def _measure(self, obj: Any, children) -> Any:
        """Record ``obj``'s depth (and, for a tuple, hashing cost) from its direct
        ``children``; refuse it past the limits.

        Hashing a tuple hashes its items, recursively and with no memo: its cost is its
        items counted along every path (``expansion``). Only tuples pass that on (a list
        is unhashable, a frozenset caches its hash), so only tuples accumulate it."""
        depth, expansion, nested = 1, 1, False
        shape = self._shape
        for child in children:
            known = shape.get(id(child))
            if known is not None:
                nested = True
                if known[1] >= depth:
                    depth = known[1] + 1
                expansion += known[2] if type(child) is tuple else 1
            elif type(child) in _CONTAINERS or isinstance(child, Placeholder):
                nested = True
                if depth < 2:
                    depth = 2
                expansion += 1 + len(child) if type(child) is tuple else 1
            else:
                expansion += 1
        if depth > limits.MAX_PICKLE_DEPTH:
            raise limits.exceeded("pickle nesting depth", f"> {limits.MAX_PICKLE_DEPTH}", "MAX_PICKLE_DEPTH")
        if type(obj) is tuple and expansion > limits.MAX_TUPLE_EXPANSION:
            raise limits.exceeded("elements reached hashing a tuple", f"{expansion:,}", "MAX_TUPLE_EXPANSION")
        if nested:
            old = shape.get(id(obj))
            if old is None or old[1] < depth or old[2] < expansion:
                shape[id(obj)] = (obj, max(depth, old[1] if old else 0), max(expansion, old[2] if old else 0))
        return obj

    def _grew(self, container: Any, *children: Any) -> None:
        """``container`` took ``children``: raise its recorded depth if they are containers."""
        shape = self._shape
        for child in children:
            if id(child) in shape or type(child) in _CONTAINERS or isinstance(child, Placeholder):
                old = shape.get(id(container))
                base = (old[1] if old else 1)
                sub = shape.get(id(child))
                depth = (sub[1] if sub else 1) + 1
                if depth > base:
                    if depth > limits.MAX_PICKLE_DEPTH:
                        raise limits.exceeded("pickle nesting depth", f"> {limits.MAX_PICKLE_DEPTH}",
                                              "MAX_PICKLE_DEPTH")
                    shape[id(container)] = (container, depth, old[2] if old else 1)

    def _made(self, obj: Any) -> Any:
        """A callable's result: account for it like the containers built by opcodes (a
        ``tuple(...)`` or ``torch.Size`` is as much a hashable key as a TUPLE opcode's), and
        charge what it holds: ``list(x)`` called a thousand times on one big list would
        otherwise multiply memory without a thousand times the opcodes."""
        if type(obj) in _ATOMS:  # a rebuilt tensor, a number: nothing to charge
            return obj
        if isinstance(obj, _TEXT):
            self._made_bytes += len(obj)
            if self._made_bytes > limits.MAX_PICKLE_BYTES:
                raise limits.exceeded("bytes of strings made by calls in the pickle", f"{self._made_bytes:,}",
                                      "MAX_PICKLE_BYTES")
            return obj
        if not isinstance(obj, _MEASURED):
            return obj
        if not obj:  # an empty container (torch's pickles make one per tensor): nothing in it to charge
            return obj
        self._made_items += len(obj)
        if self._made_items > limits.MAX_PICKLE_OBJECTS:
            raise limits.exceeded("items of containers made by calls in the pickle", f"{self._made_items:,}",
                                  "MAX_PICKLE_OBJECTS")
        if isinstance(obj, dict):
            self._key_chars = limits.check_keys(obj.keys(), None, self._key_chars)
            return self._measure(obj, itertools.chain(obj.keys(), obj.values()))
        return self._measure(obj, obj)

    # -- stack ----------------------------------------------------------------------------------
    def _pop_mark(self) -> list[Any]:
        if not self.metastack:
            raise _Corrupt("no MARK before a MARK-terminated opcode")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def _pop(self) -> Any:
        if not self.stack:
            raise _Corrupt("stack underflow")
        return self.stack.pop()

    def _top(self) -> Any:
        if not self.stack:
            raise _Corrupt("stack underflow")
        return self.stack[-1]

    # -- globals and calls ----------------------------------------------------------------------
    def find_class(self, module: str, name: str) -> Any:
        key = normalise(module, name)
        if key in ALLOWED:
            return ALLOWED[key]
        cls = self._classes.get(key)
        if cls is None:
            refused = refusal_reason(*key)
            cls = make_placeholder_class(key[0], key[1], refused)
            self._classes[key] = cls
            if not refused:
                self.placeholders.add(f"{key[0]}.{key[1]}")
        return cls

    def _call(self, func: Any, args: Any, kwargs: Any = None) -> Any:
        if type(args) is not tuple or (kwargs is not None and type(kwargs) is not dict):
            raise _Corrupt("call arguments are not a tuple")
        if type(func) is Allowed:
            if kwargs:
                raise _Corrupt(f"keyword arguments to {func.name}")
            return self._made(func.fn(*args))
        if isinstance(func, type) and issubclass(func, Placeholder):
            obj = func(*args, **(kwargs or {})) if kwargs else func(*args)
            return self._measure(obj, args)
        raise _Corrupt(f"{_name_of(func)} is not callable")

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise _Corrupt(f"unexpected persistent id {quote(pid, 60)}")
        return self._persistent(pid)

    # -- opcodes: framing and control ---------------------------------------------------------
    def op_proto(self) -> None:
        if self._byte() > 5:
            raise _Corrupt("unsupported pickle protocol")

    def op_frame(self) -> None:
        self._bytes(8)  # a frame only groups the opcodes that follow; read them as they come

    def op_stop(self) -> None:
        raise _Stop(self._pop())

    def op_mark(self) -> None:
        self.metastack.append(self.stack)
        self.stack = []

    def op_pop(self) -> None:
        if self.stack:
            self.stack.pop()
        else:
            self._pop_mark()

    def op_pop_mark(self) -> None:
        self._pop_mark()

    def op_dup(self) -> None:
        self.stack.append(self._top())

    # -- opcodes: scalars -----------------------------------------------------------------------
    def op_none(self) -> None:
        self.stack.append(None)

    def op_true(self) -> None:
        self.stack.append(True)

    def op_false(self) -> None:
        self.stack.append(False)

    def op_int(self) -> None:
        line = self._line()
        value: Any = {b"00": False, b"01": True}.get(line)
        self.stack.append(int(line) if value is None else value)

    def op_binint(self) -> None:
        self.stack.append(self._unpack(_I32))

    # (the opcodes torch's pickles run for every tensor read their arguments inline: a method
    # call each is a tenth of a tensor's cost)
    def op_binint1(self) -> None:
        data = self._read(1)
        if not data:
            raise EOFError
        self.stack.append(data[0])

    def op_binint2(self) -> None:
        data = self._read(2)
        if len(data) != 2:
            raise EOFError
        self.stack.append(data[0] | data[1] << 8)

    def op_long(self) -> None:
        line = self._line().rstrip(b"L")
        if len(line) > 3 * limits.MAX_INT_BYTES:  # decimal digits of a MAX_INT_BYTES integer, and a sign
            raise limits.exceeded("a pickled integer", f"{len(line)} digits", "MAX_INT_BYTES")
        self.stack.append(int(line))

    def _long(self, n: int) -> None:
        if n > limits.MAX_INT_BYTES:
            raise limits.exceeded("a pickled integer", f"{n} bytes", "MAX_INT_BYTES")
        self.stack.append(int.from_bytes(self._bytes(n), "little", signed=True))

    def op_long1(self) -> None:
        self._long(self._byte())

    def op_long4(self) -> None:
        self._long(self._unpack(_I32))

    def op_float(self) -> None:
        self.stack.append(float(self._line()))

    def op_binfloat(self) -> None:
        self.stack.append(self._unpack(_F64))

    # -- opcodes: strings and bytes -------------------------------------------------------------
    def op_string(self) -> None:
        line = self._line()
        if len(line) < 2 or line[0] != line[-1] or line[:1] not in (b'"', b"'"):
            raise _Corrupt("STRING opcode argument must be quoted")
        self.stack.append(codecs.escape_decode(line[1:-1])[0].decode("utf-8"))

    def op_binstring(self) -> None:
        self.stack.append(self._bytes(self._unpack(_I32)).decode("utf-8"))

    def op_short_binstring(self) -> None:
        self.stack.append(self._bytes(self._byte()).decode("utf-8"))

    def op_binbytes(self) -> None:
        self.stack.append(self._bytes(self._unpack(_U32S)))

    def op_short_binbytes(self) -> None:
        self.stack.append(self._bytes(self._byte()))

    def op_binbytes8(self) -> None:
        self.stack.append(self._bytes(self._unpack(_U64)))

    def op_bytearray8(self) -> None:
        self.stack.append(bytearray(self._bytes(self._unpack(_U64))))

    def op_unicode(self) -> None:
        self.stack.append(str(self._line(), "raw-unicode-escape"))

    def op_binunicode(self) -> None:
        data = self._read(4)
        if len(data) != 4:
            raise EOFError
        self.stack.append(str(self._bytes(_U32(data)[0]), "utf-8", "surrogatepass"))

    def op_short_binunicode(self) -> None:
        self.stack.append(str(self._bytes(self._byte()), "utf-8", "surrogatepass"))

    def op_binunicode8(self) -> None:
        self.stack.append(str(self._bytes(self._unpack(_U64)), "utf-8", "surrogatepass"))

    # -- opcodes: containers --------------------------------------------------------------------
    def op_empty_tuple(self) -> None:
        self.stack.append(())

    def _tuple(self, items: list[Any]) -> None:
        if _FLAT.issuperset(map(type, items)):  # a shape, a stride, a storage id: nothing nested (checked in C)
            if len(items) >= limits.MAX_TUPLE_EXPANSION:
                raise limits.exceeded("elements reached hashing a tuple", f"{len(items) + 1:,}", "MAX_TUPLE_EXPANSION")
            self.stack.append(tuple(items))
            return
        self.stack.append(self._measure(tuple(items), items))

    def op_tuple(self) -> None:
        self._tuple(self._pop_mark())

    def op_tuple1(self) -> None:
        self._tuple([self._pop()])

    def op_tuple2(self) -> None:
        stack = self.stack
        if len(stack) < 2:
            raise _Corrupt("stack underflow")
        b = stack.pop()
        a = stack.pop()
        if type(a) in _FLAT and type(b) in _FLAT:  # a 2-d shape or stride
            stack.append((a, b))
        else:
            self._tuple([a, b])

    def op_tuple3(self) -> None:
        c, b, a = self._pop(), self._pop(), self._pop()
        self._tuple([a, b, c])

    def op_empty_list(self) -> None:
        self.stack.append([])

    def op_list(self) -> None:
        items = self._pop_mark()
        self.stack.append(self._measure(items, items))

    def op_empty_dict(self) -> None:
        self.stack.append({})

    def op_dict(self) -> None:
        items = self._pop_mark()
        if len(items) % 2:
            raise _Corrupt("DICT with an odd number of items")
        d = dict(zip(items[::2], items[1::2]))
        self.stack.append(self._measure(d, items))

    def op_empty_set(self) -> None:
        self.stack.append(set())

    def op_frozenset(self) -> None:
        items = self._pop_mark()
        self.stack.append(self._measure(frozenset(items), items))

    def op_append(self) -> None:
        value = self._pop()
        self._extend(self._top(), [value])

    def op_appends(self) -> None:
        items = self._pop_mark()
        self._extend(self._top(), items)

    def _extend(self, target: Any, items: list[Any]) -> None:
        if type(target) is list:
            target.extend(items)
        elif isinstance(target, Placeholder):
            target.extend(items)
        else:
            raise _Corrupt(f"APPENDS to a {_name_of(target)}")
        self._grew(target, *items)

    def op_setitem(self) -> None:
        value, key = self._pop(), self._pop()
        self._setitems(self._top(), [key, value])

    def op_setitems(self) -> None:
        items = self._pop_mark()
        if len(items) % 2:
            raise _Corrupt("SETITEMS with an odd number of items")
        self._setitems(self._top(), items)

    def _setitems(self, target: Any, items: list[Any]) -> None:
        if type(target) in _DICTS or isinstance(target, Placeholder):
            for i in range(0, len(items), 2):
                key = items[i]
                if type(key) is str:  # bounded before anything hashes, folds or shows it
                    if len(key) > limits.MAX_KEY_CHARS:
                        raise limits.long_key(key)
                    self._key_chars += len(key)
                target[key] = items[i + 1]
            if self._key_chars > limits.MAX_TOTAL_KEY_CHARS:
                raise limits.exceeded("characters of all keys", f"{self._key_chars:,}", "MAX_TOTAL_KEY_CHARS")
        else:
            raise _Corrupt(f"SETITEMS on a {_name_of(target)}")
        self._grew(target, *items)

    def op_additems(self) -> None:
        items = self._pop_mark()
        target = self._top()
        if type(target) is not set:
            raise _Corrupt(f"ADDITEMS on a {_name_of(target)}")
        target.update(items)
        self._grew(target, *items)

    # -- opcodes: memo --------------------------------------------------------------------------
    def _put(self, index: int) -> None:
        if index < 0 or index > limits.MAX_MEMO_INDEX:
            raise limits.exceeded("pickle memo index", f"{index:,}", "MAX_MEMO_INDEX")
        memo = self.memo
        if index not in memo and len(memo) >= limits.MAX_MEMO_ENTRIES:
            raise limits.exceeded("pickle memo entries", f"> {limits.MAX_MEMO_ENTRIES:,}", "MAX_MEMO_ENTRIES")
        memo[index] = self._top()

    def op_put(self) -> None:
        self._put(int(self._line()))

    def op_binput(self) -> None:
        self._put(self._byte())

    def op_long_binput(self) -> None:  # (``load`` runs this one inline: a quarter of torch's opcodes)
        data = self._read(4)
        if len(data) != 4:
            raise EOFError
        self._put(_U32(data)[0])

    def op_memoize(self) -> None:
        self._put(len(self.memo))

    def _get(self, index: int) -> None:
        try:
            self.stack.append(self.memo[index])
        except KeyError:
            raise _Corrupt(f"memo slot {index} read before it was written") from None

    def op_get(self) -> None:
        self._get(int(self._line()))

    def op_binget(self) -> None:
        data = self._read(1)
        if not data:
            raise EOFError
        try:
            self.stack.append(self.memo[data[0]])
        except KeyError:
            raise _Corrupt(f"memo slot {data[0]} read before it was written") from None

    def op_long_binget(self) -> None:
        self._get(self._unpack(_U32S))

    # -- opcodes: objects -----------------------------------------------------------------------
    def op_global(self) -> None:
        module = self._line().decode("utf-8")
        name = self._line().decode("utf-8")
        self.stack.append(self.find_class(module, name))

    def op_stack_global(self) -> None:
        name, module = self._pop(), self._pop()
        if type(name) is not str or type(module) is not str:
            raise _Corrupt("STACK_GLOBAL names are not strings")
        self.stack.append(self.find_class(module, name))

    def op_reduce(self) -> None:
        stack = self.stack
        if len(stack) < 2:
            raise _Corrupt("stack underflow")
        args = stack.pop()
        func = stack.pop()
        stack.append(self._call(func, args))

    def op_newobj(self) -> None:
        args = self._pop()
        cls = self._pop()
        self.stack.append(self._call(cls, args))

    def op_newobj_ex(self) -> None:
        kwargs, args, cls = self._pop(), self._pop(), self._pop()
        self.stack.append(self._call(cls, args, kwargs))

    def op_obj(self) -> None:
        items = self._pop_mark()
        if not items:
            raise _Corrupt("OBJ without a class")
        self.stack.append(self._call(items[0], tuple(items[1:])))

    def op_inst(self) -> None:
        module = self._line().decode("utf-8")
        name = self._line().decode("utf-8")
        args = tuple(self._pop_mark())
        self.stack.append(self._call(self.find_class(module, name), args))

    def op_build(self) -> None:
        state = self._pop()
        target = self._top()
        if isinstance(target, Placeholder):
            target.__setstate__(state)
            self._grew(target, state)
        elif type(target) in _DICTS:
            pass  # e.g. the ``_metadata`` torch attaches to a state_dict: nothing ckptlab uses
        else:
            raise UnsafePickleError(f"refusing BUILD (setting the state) of {_name_of(target)}: "
                                    "only stood-in objects take state from a file")

    def op_persid(self) -> None:
        self.stack.append(self.persistent_load(self._line().decode("ascii")))

    def op_binpersid(self) -> None:
        stack = self.stack
        if not stack:
            raise _Corrupt("stack underflow")
        stack.append(self.persistent_load(stack.pop()))

    def op_ext(self) -> None:
        raise UnsafePickleError("refusing a copyreg extension code (EXT1/2/4): it names a "
                                "registered global ckptlab cannot check")

    def op_buffer(self) -> None:
        raise _Corrupt("out-of-band buffers (pickle protocol 5) are not supported")


_OPCODES: dict[int, str] = {
    ord(k): v for k, v in {
        "\x80": "op_proto", "\x95": "op_frame", ".": "op_stop", "(": "op_mark", "0": "op_pop",
        "1": "op_pop_mark", "2": "op_dup", "N": "op_none", "\x88": "op_true", "\x89": "op_false",
        "I": "op_int", "J": "op_binint", "K": "op_binint1", "M": "op_binint2", "L": "op_long",
        "\x8a": "op_long1", "\x8b": "op_long4", "F": "op_float", "G": "op_binfloat",
        "S": "op_string", "T": "op_binstring", "U": "op_short_binstring", "B": "op_binbytes",
        "C": "op_short_binbytes", "\x8e": "op_binbytes8", "\x96": "op_bytearray8", "V": "op_unicode",
        "X": "op_binunicode", "\x8c": "op_short_binunicode", "\x8d": "op_binunicode8",
        ")": "op_empty_tuple", "t": "op_tuple", "\x85": "op_tuple1", "\x86": "op_tuple2",
        "\x87": "op_tuple3", "]": "op_empty_list", "l": "op_list", "}": "op_empty_dict",
        "d": "op_dict", "\x8f": "op_empty_set", "\x91": "op_frozenset", "a": "op_append",
        "e": "op_appends", "s": "op_setitem", "u": "op_setitems", "\x90": "op_additems",
        "p": "op_put", "q": "op_binput", "r": "op_long_binput", "\x94": "op_memoize",
        "g": "op_get", "h": "op_binget", "j": "op_long_binget", "c": "op_global",
        "\x93": "op_stack_global", "R": "op_reduce", "\x81": "op_newobj", "\x92": "op_newobj_ex",
        "o": "op_obj", "i": "op_inst", "b": "op_build", "P": "op_persid", "Q": "op_binpersid",
        "\x82": "op_ext", "\x83": "op_ext", "\x84": "op_ext", "\x97": "op_buffer", "\x98": "op_buffer",
    }.items()
}


# opcode -> the method that runs it, unbound: a table of bound methods per machine would tie
# each machine in a reference cycle, and its memo (every object of the pickle) would then
# wait for the cyclic garbage collector instead of going when the load returns
_DISPATCH: list[Callable[[RestrictedUnpickler], None] | None] = [
    getattr(RestrictedUnpickler, _OPCODES[code]) if code in _OPCODES else None for code in range(256)]


def _end_of(file: IO[bytes]) -> int | None:
    """The size of what ``file`` reads from, so no length in the pickle is trusted past it."""
    if isinstance(file, io.BytesIO):
        return file.getbuffer().nbytes
    try:
        return os.fstat(file.fileno()).st_size
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None


def _name_of(obj: Any) -> str:
    """How a message names an object the pickle used: its class or marker name, bounded."""
    if isinstance(obj, Allowed):
        return obj.name
    if isinstance(obj, type) and issubclass(obj, Placeholder):
        return obj.qualname
    if isinstance(obj, Placeholder):
        return f"a {obj.qualname} object"
    named = getattr(type(obj), "marker_name", None)
    if named is not None:
        return str(obj)
    return f"a {type(obj).__name__}"


def restricted_load(file: IO[bytes], path: str | Path, member: str = "",
                    persistent_load: PersistentLoad | None = None) -> tuple[Any, set[str]]:
    """Unpickle one object from ``file``; returns it and the placeholder class names used.

    Any failure becomes a one-line ``CheckpointError`` naming ``path`` (and ``member``,
    the pickle's name inside an archive).
    """
    where = f" in {member}" if member else ""
    unpickler = RestrictedUnpickler(file, persistent_load)
    try:
        obj = unpickler.load()
    except CheckpointError as exc:
        raise type(exc)(f"{exc.message}{where}", exc.path or path) from None
    except EOFError:
        raise UnreadableFileError(f"truncated pickle{where} (it ends before its STOP opcode)", path) from None
    except MemoryError:
        raise UnreadableFileError(f"corrupt pickle{where} (asks for more memory than exists)", path) from None
    except RecursionError:
        raise UnreadableFileError(f"corrupt pickle{where} (nested too deeply)", path) from None
    except Exception as exc:  # noqa: BLE001 - any parse failure of hostile bytes is "corrupt"
        detail = str(exc) if str(exc) else type(exc).__name__
        raise UnreadableFileError(f"corrupt pickle{where} ({detail[:160]})", path) from None
    return obj, unpickler.placeholders
