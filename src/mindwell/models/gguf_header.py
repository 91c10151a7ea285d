"""Read a GGUF file's key-value metadata without parsing its tensors or vocabulary.

``gguf.GGUFReader`` parses every field eagerly, which takes 12 s on Gemma's 262k-token
vocabulary; mindwell reads a few keys at every chat start, so this reader walks the header
with ``mmap`` and leaves arrays as offsets, decoding single entries on demand (~0.1 s).
Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

from mindwell.errors import MindwellError

_SCALARS = {  # GGUF value type -> struct format
    0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
    10: "<Q", 11: "<q", 12: "<d",
}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class ArrayRef:
    """An array left undecoded: its element type, length and where its items start."""

    item_type: int
    count: int
    offset: int


class _Cursor:
    def __init__(self, buffer: mmap.mmap, offset: int = 0) -> None:
        self.buffer, self.offset = buffer, offset

    def unpack(self, fmt: str):
        value = struct.unpack_from(fmt, self.buffer, self.offset)[0]
        self.offset += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        length = self.unpack("<Q")
        raw = self.buffer[self.offset : self.offset + length]
        self.offset += length
        return raw.decode("utf-8", errors="replace")

    def skip(self, value_type: int) -> None:
        if value_type == _STRING:
            length = self.unpack("<Q")  # read first: it moves the cursor past the length
            self.offset += length
        elif value_type == _ARRAY:
            item_type, count = self.unpack("<I"), self.unpack("<Q")
            if item_type in _SCALARS:
                self.offset += struct.calcsize(_SCALARS[item_type]) * count
            else:
                for _ in range(count):
                    self.skip(item_type)
        else:
            self.offset += struct.calcsize(_SCALARS[value_type])

    def value(self, value_type: int):
        if value_type == _STRING:
            return self.string()
        if value_type == _ARRAY:
            item_type, count = self.unpack("<I"), self.unpack("<Q")
            ref = ArrayRef(item_type, count, self.offset)
            self.offset -= 12
            self.skip(_ARRAY)
            return ref
        return self.unpack(_SCALARS[value_type])


def _map(handle) -> mmap.mmap:
    return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)


def read_metadata(path: Path) -> dict:
    """All metadata keys of a GGUF file; arrays come back as ArrayRef."""
    try:
        with path.open("rb") as handle, _map(handle) as buf:
            cursor = _Cursor(buf)
            if buf[:4] != b"GGUF":
                raise ValueError("missing GGUF header")
            cursor.offset = 8  # magic and version
            cursor.unpack("<Q")  # tensor count
            kv_count = cursor.unpack("<Q")
            return {cursor.string(): cursor.value(cursor.unpack("<I")) for _ in range(kv_count)}
    except (OSError, ValueError, struct.error, KeyError) as err:
        raise MindwellError(
            f"Cannot read the metadata of {path}: {err}.",
            "The file is truncated or not a GGUF; re-export or reinstall it.",
        ) from err


def array_string(path: Path, ref: ArrayRef, index: int) -> str:
    """One string of a string array (e.g. a token's text), by index."""
    if ref.item_type != _STRING or not 0 <= index < ref.count:
        raise IndexError(f"no string at index {index}")
    with path.open("rb") as handle, _map(handle) as buf:
        cursor = _Cursor(buf, ref.offset)
        for _ in range(index):
            cursor.skip(_STRING)
        return cursor.string()
