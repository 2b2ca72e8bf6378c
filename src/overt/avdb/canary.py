"""The canary corpus: synthetic classified-looking documents and ordinary files, generated, never stored.

Every new or changed rule runs over it before release; any hit is an audit finding. The marked documents carry
classification markings the way real ones do (a banner line, in the document formats the auditor cares about,
in ASCII, UTF-16 and Cyrillic/German encodings); the ordinary files are what every endpoint has (executables,
images, notes, configs). Deterministic: the same corpus every time.
"""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass

MARKED = "marked"
ORDINARY = "ordinary"


@dataclass(frozen=True, slots=True, kw_only=True)
class Canary:
    name: str
    kind: str
    data: bytes


def _pdf(text: str) -> bytes:
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    return (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
        b"3 0 obj << /Type /Page /Parent 2 0 R /Contents 4 0 R >> endobj\n"
        + f"4 0 obj << /Length {len(stream)} >> stream\n".encode()
        + stream
        + b"\nendstream endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    )


def _ole2(text: str) -> bytes:
    header = bytes.fromhex("D0CF11E0A1B11AE1") + b"\x00" * 16 + struct.pack("<HH", 0x3E, 3) + b"\xfe\xff"
    return header.ljust(512, b"\x00") + text.encode("utf-16-le").ljust(512, b"\x00")


def _docx(text: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, body in (
            ("[Content_Types].xml", '<?xml version="1.0"?><Types/>'),
            (
                "word/document.xml",
                f"<w:document><w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>",
            ),
        ):
            z.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), body)
    return out.getvalue()


def _rtf(text: str) -> bytes:
    return ("{\\rtf1\\ansi\\deff0 {\\fonttbl {\\f0 Times;}} \\f0 " + text + " \\par}").encode("latin-1")


def corpus() -> list[Canary]:
    memo = "Subject: quarterly planning\nDistribution: limited\n"
    marked = [
        Canary(name="memo-top-secret.txt", kind=MARKED, data=f"TOP SECRET//SI//NOFORN\n{memo}".encode()),
        Canary(name="memo-ts-sci-utf16.txt", kind=MARKED, data=f"TS/SCI\n{memo}".encode("utf-16-le")),
        Canary(name="brief-secret.pdf", kind=MARKED, data=_pdf("SECRET//REL TO USA, FVEY - project brief")),
        Canary(name="minutes-confidential.doc", kind=MARKED, data=_ole2("CONFIDENTIAL - board minutes")),
        Canary(name="plan-fouo.docx", kind=MARKED, data=_docx("UNCLASSIFIED//FOUO operations plan")),
        Canary(name="report-noforn.rtf", kind=MARKED, data=_rtf("SECRET//NOFORN situation report")),
        Canary(name="doklad-ss.txt", kind=MARKED, data="СОВЕРШЕННО СЕКРЕТНО\nДоклад\n".encode()),
        Canary(name="doklad-cp1251.txt", kind=MARKED, data="СЕКРЕТНО\nДоклад\n".encode("cp1251")),
        Canary(name="dsp.txt", kind=MARKED, data="ДЛЯ СЛУЖЕБНОГО ПОЛЬЗОВАНИЯ\n".encode()),
        Canary(name="vermerk.txt", kind=MARKED, data="VS-NUR FÜR DEN DIENSTGEBRAUCH\nVermerk\n".encode()),
        Canary(name="streng-geheim.pdf", kind=MARKED, data=_pdf("STRENG GEHEIM - Lagebericht")),
    ]
    elf = b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + struct.pack("<HHI", 2, 0x3E, 1) + bytes(range(256)) * 4
    pe = (
        b"MZ\x90\x00"
        + b"\x00" * 56
        + b"This program cannot be run in DOS mode.\r\r\n$"
        + bytes(range(256)) * 2
    )
    ordinary = [
        Canary(name="tool.elf", kind=ORDINARY, data=elf),
        Canary(name="setup.exe", kind=ORDINARY, data=pe),
        Canary(name="photo.png", kind=ORDINARY, data=b"\x89PNG\r\n\x1a\n" + bytes(range(200))),
        Canary(name="notes.txt", kind=ORDINARY, data=b"Shopping: bread, milk, coffee.\nCall the plumber.\n"),
        Canary(
            name="config.json",
            kind=ORDINARY,
            data=b'{"server": "example.org", "port": 8443, "debug": false}\n',
        ),
        Canary(name="build.sh", kind=ORDINARY, data=b"#!/bin/sh\nset -e\nmake all\n"),
        Canary(name="invoice.pdf", kind=ORDINARY, data=_pdf("Invoice 2024-117 - total 120.00 EUR")),
        Canary(name="letter.docx", kind=ORDINARY, data=_docx("Dear customer, thank you for your order.")),
    ]
    return marked + ordinary
