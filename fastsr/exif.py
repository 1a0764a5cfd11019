"""EXIF edits made in place on the raw block: read the orientation, reset it, and update
the pixel dimensions, leaving every other byte as it was (a re-serialised block moves
the maker notes, whose internal offsets then point at the wrong bytes).

An EXIF block is a small TIFF structure, optionally after an "Exif\\0\\0" header:
IFD0 holds the orientation and points at the Exif IFD, which holds the pixel size.
"""

from __future__ import annotations

import struct

ORIENTATION = 0x0112
PIXEL_X_DIMENSION = 0xA002
PIXEL_Y_DIMENSION = 0xA003
_EXIF_IFD = 0x8769
_SHORT, _LONG = 3, 4
_MAX_VALUE = {_SHORT: 0xFFFF, _LONG: 0xFFFFFFFF}
HEADER = b"Exif\x00\x00"


def _single_values(exif: bytes) -> tuple[str, dict[int, tuple[int, int]]]:
    """(byte order, tag -> (type, byte position)) of the one-number SHORT/LONG entries of
    IFD0 and the Exif IFD; whatever a damaged block still holds, never an error."""
    start = len(HEADER) if exif.startswith(HEADER) else 0
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(exif[start : start + 4])
    found: dict[int, tuple[int, int]] = {}
    if order is None:
        return "<", found
    try:
        (ifd,) = struct.unpack_from(order + "I", exif, start + 4)
        for offset in (ifd, None):
            if offset is None:  # the Exif IFD, if IFD0 pointed at one
                if _EXIF_IFD not in found:
                    break
                kind, position = found.pop(_EXIF_IFD)
                (offset,) = struct.unpack_from(order + "I", exif, position)
            (count,) = struct.unpack_from(order + "H", exif, start + offset)
            for index in range(count):
                entry = start + offset + 2 + 12 * index
                tag, kind, number = struct.unpack_from(order + "HHI", exif, entry)
                if kind in _MAX_VALUE and number == 1:
                    found.setdefault(tag, (kind, entry + 8))
    except struct.error:  # truncated or pointing outside the block: keep what was read
        pass
    return order, found


def read_tag(exif: bytes, tag: int) -> int | None:
    """The value of a one-number SHORT/LONG tag of IFD0 or the Exif IFD, None if absent."""
    order, found = _single_values(exif)
    if tag not in found:
        return None
    kind, position = found[tag]
    return struct.unpack_from(order + ("H" if kind == _SHORT else "I"), exif, position)[0]


def with_tags(exif: bytes, values: dict[int, int]) -> bytes:
    """`exif` with each tag that is present set to its new value (others left absent)."""
    order, found = _single_values(exif)
    patched = bytearray(exif)
    for tag, value in values.items():
        if tag in found and 0 <= value <= _MAX_VALUE[found[tag][0]]:
            kind, position = found[tag]
            struct.pack_into(order + ("H" if kind == _SHORT else "I"), patched, position, value)
    return bytes(patched)
