"""Every bound a checkpoint file is held to, in one place (docs/security.md lists them).

A hostile file is small and asks for a lot: a memo slot four billion entries out, a key
nested 150,000 levels deep, a view repeating one element a billion times, a member that
inflates a thousandfold. Each limit below turns one such request into a one-line
``LimitError`` naming the constant, long before memory or time runs out. The values are
far above anything a real checkpoint needs (the largest published ones are noted).
"""
from __future__ import annotations

from collections.abc import Iterable

from ckptlab.errors import LimitError, quote

__all__ = ["MAX_PICKLE_BYTES", "MAX_PICKLE_OBJECTS", "MAX_MEMO_INDEX", "MAX_MEMO_ENTRIES", "MAX_PICKLE_DEPTH",
    "MAX_TUPLE_EXPANSION", "MAX_INT_BYTES", "MAX_LINE_CHARS", "MAX_TREE_DEPTH", "MAX_MODULE_DEPTH",
    "MAX_PLAIN_NODES", "MAX_DCP_KEY_PARTS", "MAX_KEY_CHARS", "MAX_TOTAL_KEY_CHARS", "MAX_PATTERN_CHARS",
    "MAX_MATCH_SECONDS", "MAX_RENAME_SECONDS", "MAX_RECIPE_DEPTH", "MAX_RECIPE_NODES", "MAX_TENSOR_DIMS",
    "MAX_TENSOR_DIM_SIZE", "MAX_VIEW_EXPANSION", "MAX_EXPANDED_VIEW_ELEMENTS", "MAX_MEMBER_INFLATED_BYTES",
    "MAX_TOTAL_INFLATED_BYTES", "MAX_ZIP_MEMBERS", "MAX_DEFLATE_RATIO", "MAX_SAFETENSORS_HEADER_BYTES",
    "MAX_INDEX_DEPTH", "MAX_INDEX_BYTES", "NUMPY_DTYPE_KINDS", "MAX_NUMPY_BYTES", "check_keys", "long_key",
    "exceeded"]

# -- pickles -------------------------------------------------------------------------------
# Bytes of one pickle (data.pkl, .metadata, a legacy header). A 20k-tensor state_dict's
# data.pkl is ~2 MB.
MAX_PICKLE_BYTES = 128 * 2**20
# Opcodes run for one pickle; each makes at most one object or reference, so this bounds
# the objects (and list/dict elements) a pickle can make. Bounds too, separately, the items
# of the containers its calls return (as MAX_PICKLE_BYTES bounds the strings they return). ~30 per tensor in torch's pickles
# (so ~160k tensors; memo slots: ~8 per tensor).
MAX_PICKLE_OBJECTS = 5_000_000
# Memo: the highest slot index, and the number of slots filled. Picklers number slots
# 0, 1, 2, ... so a real index never exceeds the object count.
MAX_MEMO_INDEX = MAX_PICKLE_OBJECTS
MAX_MEMO_ENTRIES = 1_500_000
# Nesting of containers (tuples, lists, dicts, sets, stood-in objects) as they are built.
# Hashing a tuple recurses in C without a guard, so a deep tuple key would crash the process.
MAX_PICKLE_DEPTH = 500
# Cost of hashing a tuple: its items counted along every path (a DAG of shared tuples
# costs 2**depth to hash, and as much to print).
MAX_TUPLE_EXPANSION = 1_000_000
# Bytes of one integer (LONG1/LONG4); the legacy torch magic number takes 10.
MAX_INT_BYTES = 64
# Characters of one text-protocol line (INT, FLOAT, GLOBAL names, ...).
MAX_LINE_CHARS = 4096

# -- the loaded tree ------------------------------------------------------------------------
# Levels the container search (and a pickled nn.Module's or TorchScript module's submodule
# walk) goes down; every walk keeps a visited set, so shared references cost nothing extra.
MAX_TREE_DEPTH = 64
MAX_MODULE_DEPTH = MAX_TREE_DEPTH
# Values in one plain extra (epoch, config, ...) that may be written back into a new file.
MAX_PLAIN_NODES = 100_000
# Parts of a DCP key path rebuilt as nested dicts (deeper: kept as one flat dotted key).
MAX_DCP_KEY_PARTS = 64

# -- keys ---------------------------------------------------------------------------------
# Characters of one key: a tensor name, a str key of a dict in a pickle, a safetensors or
# index name, a dotted key made by flattening nested dicts. The longest keys of published
# checkpoints are ~130 characters (FSDP-wrapped module names); the work done per key
# (folding numbered parts, aligning, suggesting, tables) grows faster than its length
# (one 80,000-character key took a minute and gigabytes), so 8x that is the bound.
MAX_KEY_CHARS = 1024
# Characters of all keys of one file together (each pickle's dict keys, a safetensors
# header's names, an index's weight_map, the checkpoint's final keys). The largest published
# state_dicts hold ~100k keys of ~60 characters (6 MB); 64 Mi is ten times that.
MAX_TOTAL_KEY_CHARS = 64 * 2**20

# -- recipes (uploaded by any visitor of the web app: text, not a checkpoint) ---------------
# Characters of one rule or key pattern; real ones are under 200 (a whole escaped key).
MAX_PATTERN_CHARS = 1024
# Seconds one pattern may take on one key (the ``regex`` engine's timeout; it fires late by
# up to ~2x on a loaded machine). Real patterns take microseconds; a catastrophically
# backtracking one (``(a+)+$``) would take longer than the universe's age on a long key.
MAX_MATCH_SECONDS = 0.25
# Seconds the rules of one recipe may take over all keys of one checkpoint (20 rules over
# 100k keys take ~10 s on a loaded 2-core machine).
MAX_RENAME_SECONDS = 120.0
# Nesting of a recipe's YAML/JSON (real recipes nest ~5 levels: convert ops' arguments).
MAX_RECIPE_DEPTH = 32
# Values of a recipe counted with every YAML alias and merge key expanded (a 437-byte
# "billion laughs" or nested-merge document expands to billions).
MAX_RECIPE_NODES = 200_000

# -- tensors --------------------------------------------------------------------------------
# Dimensions of a tensor, and the largest size or stride of one dimension.
MAX_TENSOR_DIMS = 64
MAX_TENSOR_DIM_SIZE = 2**48
# Elements a view may address per element of its storage. Views must fit their storage,
# and overlapping (e.g. stride-0) views may not hold more elements than the storage itself,
# so a 4-byte storage cannot be read back as 4 GB...
MAX_VIEW_EXPANSION = 1
# ...except for small views: ``torch.save`` keeps an ``expand()``-ed tensor (a broadcast
# ``position_ids`` buffer, a mask) as its small storage with stride 0, and such a view may hold
# up to this many elements whatever its storage (4 MB of float32: no bomb).
MAX_EXPANDED_VIEW_ELEMENTS = 2**20

# -- archives -------------------------------------------------------------------------------
# Bytes a compressed (deflated) zip member may inflate to; torch never compresses, only
# re-zipped archives do. Reading a tensor at the end of such a member inflates everything
# before it (in 1 MB steps, so memory stays bounded).
MAX_MEMBER_INFLATED_BYTES = 2 * 2**30
# Bytes inflated in all, over every read of one opened archive.
MAX_TOTAL_INFLATED_BYTES = 64 * 2**30
# Members listed in one archive's directory (one per storage; each costs an object to list).
MAX_ZIP_MEMBERS = 500_000
# A metadata member (data.pkl, code) may not compress better than this.
MAX_DEFLATE_RATIO = 100
# A safetensors JSON header (the format's own limit).
MAX_SAFETENSORS_HEADER_BYTES = 100_000_000
# Indirection: a *.index.json names shards, and a shard may not be an index itself.
MAX_INDEX_DEPTH = 1
MAX_INDEX_BYTES = 64 * 2**20

# -- numpy ----------------------------------------------------------------------------------
# numpy dtype kinds a pickle may name: bool, signed/unsigned int, float, complex. Never
# object ("O"), structured, or sub-array dtypes.
NUMPY_DTYPE_KINDS = frozenset("biufc")
# Bytes of one numpy array rebuilt from a pickle (its data is inside the pickle).
MAX_NUMPY_BYTES = MAX_PICKLE_BYTES


def check_keys(keys: Iterable[object], path: object = None, total: int = 0) -> int:
    """Refuse a key past ``MAX_KEY_CHARS``, or keys (plus ``total`` already counted) past
    ``MAX_TOTAL_KEY_CHARS``; returns the new total. Only str keys count."""
    for key in keys:
        if type(key) is str:
            n = len(key)
            if n > MAX_KEY_CHARS:
                raise long_key(key, path)
            total += n
    if total > MAX_TOTAL_KEY_CHARS:
        raise exceeded("characters of all keys", f"{total:,}", "MAX_TOTAL_KEY_CHARS", path)
    return total


def long_key(key: str, path: object = None) -> LimitError:
    return exceeded(f"key {quote(key[:40])}{'…' if len(key) > 40 else ''}", f"{len(key):,} characters",
                    "MAX_KEY_CHARS", path)


def exceeded(what: str, value: object, limit_name: str, path: object = None) -> LimitError:
    """The one-line error for ``what`` (``value``) going past the limit named ``limit_name``."""
    limit = globals()[limit_name]
    shown = f"{limit:,}" if isinstance(limit, int) else str(limit)
    return LimitError(f"{what} ({value}) exceeds the limit {limit_name} = {shown}", path)
