"""The test suite's stdlib PNG reader, on PNGs built here with every filter type."""
import struct
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))
import pngpixels  # noqa: E402


def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def encode_rgba(rows, filters):
    """PNG bytes of RGBA rows, each row stored with the given filter (raw bytes pre-filtered)."""
    width, height = len(rows[0]), len(rows)
    raw, prev = b"", bytes(width * 4)
    for y, row in enumerate(rows):
        line = bytes(v for px in row for v in px)
        ftype = filters[y % len(filters)]
        out = bytearray()
        for i, v in enumerate(line):
            a = line[i - 4] if i >= 4 else 0
            b = prev[i]
            c = prev[i - 4] if i >= 4 else 0
            if ftype == 0:
                pred = 0
            elif ftype == 1:
                pred = a
            elif ftype == 2:
                pred = b
            elif ftype == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            out.append((v - pred) & 0xFF)
        raw += bytes([ftype]) + bytes(out)
        prev = line
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_decodes_every_filter_and_finds_the_data_colour():
    blue = (0x1F, 0x77, 0xB4, 255)
    white = (255, 255, 255, 255)
    rows = [[blue if (x == y or x == 5) else (x * 20, y * 30, 7, 255) for x in range(8)] for y in range(6)]
    rows[0][0] = white
    png = encode_rgba(rows, [0, 1, 2, 3, 4])
    width, height, decoded = pngpixels.decode(png)
    assert (width, height) == (8, 6)
    assert decoded == rows
    # Only inside the plot rectangle: columns 1..5 of rows 1..4.
    assert pngpixels.columns_with_colour(decoded, "1F77B4", 1, 1, 5, 4) == {1, 2, 3, 4, 5}
    assert pngpixels.columns_with_colour(decoded, "FF0000", 0, 0, 8, 6) == set()
