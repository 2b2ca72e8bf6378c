"""The ordinary binary canaries: files every endpoint has that are not documents.

A PE32+ console executable, a static x86-64 ELF executable and a PNG image, each small, valid and built
byte by byte, so that a rule for malformed executables or images has something well-formed not to fire on.
Which files are in the corpus is :mod:`overt.avdb.canary`'s job.
"""

from __future__ import annotations

import struct
import zlib


def write_pe() -> bytes:
    """A PE32+ console executable: DOS header and stub, COFF and optional headers, .text and .rdata."""
    stub = bytes.fromhex("0E1FBA0E00B409CD21B8014CCD21") + b"This program cannot be run in DOS mode.\r\r\n$"
    dos = struct.pack(
        "<2s13H8x2H20xI", b"MZ", 0x90, 3, 0, 4, 0, 0xFFFF, 0, 0xB8, 0, 0, 0, 0x40, 0, 0, 0, 0x80
    )
    dos = (dos + stub).ljust(0x80, b"\x00")
    code = (bytes.fromhex("4883EC28488D0DF90F0000E8000000004883C428C3CC") * 24).ljust(0x200, b"\xcc")
    rdata = b"usage: setup [--quiet] [--target DIR]\x00Copyright (C) 2024 Example Ltd.\x00setup.pdb\x00"
    rdata = rdata.ljust(0x200, b"\x00")
    coff = struct.pack("<4sHHIIIHH", b"PE\x00\x00", 0x8664, 2, 0x65F01A2B, 0, 0, 240, 0x0022)
    opt = struct.pack(
        "<HBBIIIIIQIIHHHHHHIIIIHHQQQQII",
        0x20B,
        14,
        36,
        0x200,
        0x200,
        0,
        0x1000,
        0x1000,
        0x140000000,
        0x1000,
        0x200,
        6,
        0,
        0,
        0,
        6,
        0,
        0,
        0x3000,
        0x400,
        0,
        3,
        0x8160,
        0x100000,
        0x1000,
        0x100000,
        0x1000,
        0,
        16,
    ) + bytes(16 * 8)
    sections = struct.pack("<8sIIIIIIHHI", b".text", 0x1A0, 0x1000, 0x200, 0x400, 0, 0, 0, 0, 0x60000020)
    sections += struct.pack("<8sIIIIIIHHI", b".rdata", 0x60, 0x2000, 0x200, 0x600, 0, 0, 0, 0, 0x40000040)
    return (dos + coff + opt + sections).ljust(0x400, b"\x00") + code + rdata


def write_elf() -> bytes:
    """A static x86-64 ELF executable that writes a line and exits."""
    msg = b"backup finished\n"
    entry = 0x400000 + 64 + 56
    code = (
        bytes.fromhex("B801000000BF01000000")
        + b"\x48\xbe"
        + struct.pack("<Q", entry + 48)
        + bytes.fromhex("BA")
        + struct.pack("<I", len(msg))
        + bytes.fromhex("0F05B83C00000031FF0F05")
    ).ljust(48, b"\x90") + msg
    size = 64 + 56 + len(code)
    ident = b"\x7fELF\x02\x01\x01" + bytes(9)
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, entry, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, 0x400000, 0x400000, size, size, 0x1000)
    return header + phdr + code


def write_png() -> bytes:
    """A 32x32 RGB gradient PNG with a tEXt chunk, as a paint program saves it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"".join(bytes((x * 8, y * 8, 160)) for x in range(32)) for y in range(32))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 32, 32, 8, 2, 0, 0, 0))
        + chunk(b"tEXt", b"Software\x00Example Paint 3.1")
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )
