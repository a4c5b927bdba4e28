"""Tell a checkpoint's format from its content (the extension is only a hint users get wrong)."""
from __future__ import annotations

import struct
from pathlib import Path

from ckptlab.errors import UnreadableFileError

__all__ = ["ZIP", "PICKLE", "SAFETENSORS", "INDEX", "DCP", "TAR", "sniff", "index_in"]

ZIP = "zip"
PICKLE = "pickle"
SAFETENSORS = "safetensors"
INDEX = "index"
DCP = "dcp"
TAR = "tar"


def sniff(path: Path) -> str:
    """One of the kinds above, or ``UnreadableFileError`` saying why not."""
    if not path.exists():
        raise UnreadableFileError("no such file or directory", path)
    if path.is_dir():
        return _sniff_dir(path)
    size = path.stat().st_size
    if size == 0:
        raise UnreadableFileError("empty file (0 bytes)", path)
    if path.name.endswith(".index.json"):
        return INDEX
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return ZIP
    json_header = len(head) >= 9 and head[8:9] == b"{"
    # A plausible safetensors header wins over pickle: a header length of 0x580 starts b"\x80\x05".
    if json_header and 0 < struct.unpack("<Q", head[:8])[0] <= size - 8:
        return SAFETENSORS
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return PICKLE
    if json_header:  # a truncated or oversized safetensors header: its reader says which
        return SAFETENSORS
    if len(head) >= 262 and head[257:262] == b"ustar":
        return TAR
    if path.suffix == ".safetensors":
        raise UnreadableFileError("not a valid safetensors file (no JSON header after the length)", path)
    raise UnreadableFileError(f"not a checkpoint format ckptlab knows (starts with {head[:8].hex(' ')})", path)


def _sniff_dir(path: Path) -> str:
    if (path / ".metadata").is_file():
        return DCP
    raise UnreadableFileError(
        "directory is neither a torch.distributed.checkpoint (no .metadata) nor a file; "
        "give a checkpoint file or a *.index.json", path)


def index_in(folder: Path) -> Path | None:
    """The one ``*.index.json`` of a model folder, if there is exactly one."""
    found = sorted(folder.glob("*.index.json"))
    return found[0] if len(found) == 1 else None
