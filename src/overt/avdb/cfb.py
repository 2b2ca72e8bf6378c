"""OLE2 compound files (MS-CFB) and the Word 97 and Excel streams the canaries put in them.

:func:`cfb` is a small version 3 writer: header, FAT, a directory whose siblings form a balanced tree, every
stream in regular sectors (no mini FAT). On it, :func:`write_doc` builds a Word 97 ``doc`` (FIB, piece table,
UTF-16LE or 8-bit text, SummaryInformation) and :func:`write_xls` an Excel ``xls`` (a BIFF8 ``Workbook``
stream with a shared string table). It writes; it reads nothing. Which documents are built is
:mod:`overt.avdb.canary`'s job.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence

from overt.avdb.docmodel import Doc, sheet_rows

# --- the compound file ----------------------------------------------------------------------------------

_SECTOR = 512
_FREE, _END, _FATSECT, _NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
CFB_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")


def cfb(streams: Sequence[tuple[str, bytes]], *, clsid: bytes = bytes(16)) -> bytes:
    """A version 3 compound file holding ``streams`` in the root storage.

    Every stream is padded to the 4096-byte mini-stream cutoff, so all live in regular sectors (Word and Excel
    pad their property set streams the same way) and the file needs no mini FAT. At most 109 FAT sectors:
    about 7 MB.
    """
    padded = [(name, data.ljust(4096, b"\x00")) for name, data in streams]
    sizes = [-(-len(d) // _SECTOR) for _, d in padded]
    dir_sectors = -(-(len(padded) + 1) // 4)
    used = sum(sizes) + dir_sectors
    fat_sectors = 1
    while fat_sectors * (_SECTOR // 4) < used + fat_sectors:
        fat_sectors += 1
    if fat_sectors > 109:
        raise ValueError("compound file too large for a header-only DIFAT")
    fat = [_FATSECT] * fat_sectors
    starts = []
    for count in [dir_sectors, *sizes]:
        starts.append(len(fat))
        fat += [*range(len(fat) + 1, len(fat) + count), _END]
    fat += [_FREE] * (fat_sectors * (_SECTOR // 4) - len(fat))
    header = (
        CFB_MAGIC
        + bytes(16)
        + struct.pack(
            "<HHHHH6xIIIIIIIII",
            0x003E,
            3,
            0xFFFE,
            9,
            6,
            0,
            fat_sectors,
            starts[0],
            0,
            4096,
            _END,
            0,
            _END,
            0,
        )
    )
    header += struct.pack("<109I", *range(fat_sectors), *[_FREE] * (109 - fat_sectors))
    directory = _cfb_directory(padded, starts[1:], clsid)
    directory = directory.ljust(dir_sectors * _SECTOR, b"\x00")
    body = b"".join(d.ljust(n * _SECTOR, b"\x00") for (_, d), n in zip(padded, sizes, strict=True))
    return header + struct.pack(f"<{len(fat)}I", *fat) + directory + body


def _cfb_entry(
    name: str, kind: int, *, left: int, right: int, child: int, clsid: bytes, start: int, size: int
) -> bytes:
    raw = (name + "\x00").encode("utf-16-le")
    return struct.pack(
        "<64sHBBIII16sI8x8xIQ", raw, len(raw), kind, 1, left, right, child, clsid, 0, start, size
    )


def _cfb_directory(streams: Sequence[tuple[str, bytes]], starts: Sequence[int], clsid: bytes) -> bytes:
    """The root entry and one entry per stream; the siblings form a balanced binary tree (CFB order)."""
    order = sorted(range(len(streams)), key=lambda i: (len(streams[i][0]), streams[i][0].upper()))
    links: dict[int, tuple[int, int]] = {}

    def tree(ids: list[int]) -> int:
        if not ids:
            return _NOSTREAM
        mid = len(ids) // 2
        links[ids[mid]] = (tree(ids[:mid]), tree(ids[mid + 1 :]))
        return ids[mid] + 1

    top = tree(order)
    out = [
        _cfb_entry(
            "Root Entry", 5, left=_NOSTREAM, right=_NOSTREAM, child=top, clsid=clsid, start=_END, size=0
        )
    ]
    for i, (name, data) in enumerate(streams):
        left, right = links[i]
        out.append(
            _cfb_entry(
                name,
                2,
                left=left,
                right=right,
                child=_NOSTREAM,
                clsid=bytes(16),
                start=starts[i],
                size=len(data),
            )
        )
    empty = _cfb_entry(
        "", 0, left=_NOSTREAM, right=_NOSTREAM, child=_NOSTREAM, clsid=bytes(16), start=0, size=0
    )
    out += [empty] * (-len(out) % 4)
    return b"".join(out)


# --- Word and Excel streams -----------------------------------------------------------------------------


def _summary_information(title: str, subject: str, codepage: int) -> bytes:
    """A SummaryInformation property set: code page, title, subject, author (MS-OLEPS)."""
    codec = "utf-16-le" if codepage == 1200 else f"cp{codepage}"

    def lpstr(s: str) -> bytes:
        raw = (s + "\x00").encode(codec, "replace")
        raw += b"\x00" * (-len(raw) % 4)
        count = len(raw) // 2 if codepage == 1200 else len(raw)
        return struct.pack("<II", 0x1E, count) + raw

    props = [
        (1, struct.pack("<IhH", 2, codepage if codepage < 32768 else codepage - 65536, 0)),
        (2, lpstr(title)),
        (3, lpstr(subject)),
        (4, lpstr("Planning Cell")),
    ]
    offset = 8 + 8 * len(props)
    table, values = b"", b""
    for pid, value in props:
        table += struct.pack("<II", pid, offset + len(values))
        values += value
    section = struct.pack("<II", offset + len(values), len(props)) + table + values
    fmtid = uuid.UUID("f29f85e0-4ff9-1068-ab91-08002b27b3d9").bytes_le
    return (
        struct.pack("<HHI16sI", 0xFFFE, 0, 0x00020006, bytes(16), 1) + fmtid + struct.pack("<I", 48) + section
    )


def _word_document(doc: Doc, *, unicode: bool) -> tuple[bytes, bytes]:
    """A Word 97 WordDocument stream (FIB, then the text at 0x800) and its 1Table stream (the piece table)."""
    text = "\r".join(doc.lines()) + "\r"
    raw = text.encode("utf-16-le") if unicode else text.encode("cp1252", "replace")
    lid = {"en": 0x0409, "ru": 0x0419, "zh": 0x0804}[doc.lang]
    fib = bytearray(0x800)
    struct.pack_into("<HHHHHH", fib, 0, 0xA5EC, 0x00C1, 0, lid, 0, 0x0200)  # fWhichTblStm: 1Table
    struct.pack_into("<H", fib, 0x20, 14)
    struct.pack_into("<H", fib, 0x3E, 22)
    struct.pack_into("<II", fib, 0x40, 0x800 + len(raw), 0)
    struct.pack_into("<i", fib, 0x4C, len(text))  # ccpText
    struct.pack_into("<H", fib, 0x98, 0x5D)
    fc = 0x800 if unicode else (0x800 * 2) | 0x40000000
    plc = struct.pack("<II", 0, len(text)) + struct.pack("<HIH", 0, fc, 0)
    clx = b"\x02" + struct.pack("<I", len(plc)) + plc
    struct.pack_into("<II", fib, 0x1A2, 0, len(clx))  # fcClx, lcbClx
    return bytes(fib) + raw, clx


def write_doc(doc: Doc, *, unicode: bool, codepage: int) -> bytes:
    """A Word 97 document: UTF-16LE text when ``unicode``, else CP1252; properties in ``codepage``."""
    if not unicode:
        doc = doc.encodable("cp1252")
    word, table = _word_document(doc, unicode=unicode)
    summary = _summary_information(doc.title, doc.banner, codepage)
    return cfb(
        [("WordDocument", word), ("1Table", table), ("\x05SummaryInformation", summary)],
        clsid=uuid.UUID("00020906-0000-0000-c000-000000000046").bytes_le,
    )


def _biff(kind: int, data: bytes) -> bytes:
    return struct.pack("<HH", kind, len(data)) + data


def _xl_string(s: str, *, width: int) -> bytes:
    """An XLUnicodeString (width 2: 16-bit length, SST and LABEL; 1: 8-bit, BOUNDSHEET): compressed when Latin-1."""
    try:
        raw, flag = s.encode("latin-1"), 0
    except UnicodeEncodeError:
        raw, flag = s.encode("utf-16-le"), 1
    return struct.pack("<H" if width == 2 else "<B", len(s)) + bytes([flag]) + raw


def _sst(strings: Sequence[str]) -> bytes:
    """The SST record and its CONTINUE records, split between strings (8224-byte record limit)."""
    records, current = [], struct.pack("<II", len(strings), len(strings))
    for s in strings:
        item = _xl_string(s[:2000], width=2)
        if len(current) + len(item) > 8224:
            records.append(current)
            current = b""
        current += item
    records.append(current)
    return _biff(0x00FC, records[0]) + b"".join(_biff(0x003C, r) for r in records[1:])


def write_xls(doc: Doc) -> bytes:
    """An Excel 97 workbook of :func:`~overt.avdb.docmodel.sheet_rows`, strings in a BIFF8 SST."""
    rows = sheet_rows(doc)
    strings = list(dict.fromkeys(v for row in rows for v in row if isinstance(v, str)))
    index = {s: i for i, s in enumerate(strings)}
    bof = struct.pack("<HHHHII", 0x0600, 0x0005, 0x1E6B, 0x07CD, 0x000100C1, 0x00000006)
    edge = _xl_string(f"&C{doc.banner}", width=2) if doc.banner else b""
    cells = b""
    for r, row in enumerate(rows):
        for c, v in enumerate(row):
            if isinstance(v, str):
                cells += _biff(0x00FD, struct.pack("<HHHI", r, c, 15, index[v]))
            else:
                cells += _biff(0x0203, struct.pack("<HHHd", r, c, 15, v))
    sheet = (
        _biff(0x0809, bof[:2] + struct.pack("<H", 0x0010) + bof[4:])
        + _biff(0x0014, edge)
        + _biff(0x0015, edge)
        + _biff(0x0200, struct.pack("<IIHHH", 0, len(rows), 0, 5, 0))
        + cells
        + _biff(0x000A, b"")
    )
    name = _xl_string("Register", width=1)
    globals_head = _biff(0x0809, bof) + _biff(0x0042, struct.pack("<H", 1200))
    tail = _sst(strings) + _biff(0x000A, b"")
    sheet_at = len(globals_head) + 4 + 6 + len(name) + len(tail)
    boundsheet = _biff(0x0085, struct.pack("<IBB", sheet_at, 0, 0) + name)
    workbook = globals_head + boundsheet + tail + sheet
    summary = _summary_information(doc.title, doc.banner, 1200)
    return cfb(
        [("Workbook", workbook), ("\x05SummaryInformation", summary)],
        clsid=uuid.UUID("00020820-0000-0000-c000-000000000046").bytes_le,
    )
