"""The canary PDF writer: a file laid out as Word's "Save as PDF" lays it out, with an exact xref table.

A catalog, page tree, WinAnsi Type1 font, one content stream per page (deflated when unpadded), an Info
dictionary (UTF-16BE where text is not Latin), XMP metadata, and a cross-reference table whose offsets are
exact, with trailer, ``startxref`` and ``%%EOF``. Page text is what CP1252 stores; the metadata carries every
marking. Which documents are built is :mod:`overt.avdb.canary`'s job.
"""

from __future__ import annotations

import hashlib
import html
import zlib
from collections.abc import Sequence

from overt.avdb.docmodel import Doc, script_of


def _pdf_string(text: str) -> bytes:
    """A PDF literal string: PDFDocEncoding where Latin-1 holds it, else UTF-16BE with its BOM."""
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:
        raw = b"\xfe\xff" + text.encode("utf-16-be")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _xmp(doc: Doc) -> bytes:
    e = html.escape
    keywords = "; ".join(doc.markings)
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:pdf="http://ns.adobe.com/pdf/1.3/" xmlns:xmp="http://ns.adobe.com/xap/1.0/">\n'
        f'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{e(doc.title)}</rdf:li></rdf:Alt></dc:title>\n'
        f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{e(doc.banner)}</rdf:li></rdf:Alt>'
        f"</dc:description>\n<pdf:Keywords>{e(keywords)}</pdf:Keywords>\n"
        "<pdf:Producer>Microsoft® Word for Microsoft 365</pdf:Producer>\n"
        "<xmp:CreateDate>2024-03-12T10:15:00+01:00</xmp:CreateDate>\n"
        '</rdf:Description></rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>'
    ).encode()


def _pdf_page(lines: Sequence[str], banner: str) -> bytes:
    def s(t: str) -> bytes:
        raw = t.encode("cp1252", "replace")
        return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"

    parts = [b"BT /F1 10 Tf 12 TL 72 740 Td"]
    parts += [s(line) + b" Tj T*" for line in lines]
    parts.append(b"ET")
    if banner:
        for y in (770, 24):
            parts.append(b"BT /F1 12 Tf 230 %d Td %s Tj ET" % (y, s(banner)))
    return b"\n".join(parts) + b"\n"


def write_pdf(doc: Doc, *, compress: bool) -> bytes:
    """A PDF of the document, content streams deflated when ``compress``."""
    latin = doc.encodable("cp1252")
    banner = latin.banner if script_of(latin.banner) == "latin" else ""
    lines = [ln for p in latin.body() for ln in _sentences_of(p)]
    pages = [lines[i : i + 56] for i in range(0, len(lines), 56)] or [[]]
    info = b"<< /Title %s /Subject %s /Keywords %s /Author (Planning Cell) /Creator (Microsoft Word) " % (
        _pdf_string(doc.title),
        _pdf_string(doc.banner),
        _pdf_string("; ".join(doc.markings)),
    )
    info += b"/Producer (Microsoft Word for Microsoft 365) /CreationDate (D:20240312101500+01'00') >>"
    xmp = _xmp(doc)
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R /Metadata 4 0 R /Lang (%s) >>" % doc.lang.encode(),
        b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % (6 + 2 * i) for i in range(len(pages))), len(pages)),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Metadata /Subtype /XML /Length %d >>\nstream\n%s\nendstream" % (len(xmp), xmp),
        info,
    ]
    for i, page in enumerate(pages):
        content = _pdf_page(page, banner)
        head = b"<< /Length %d >>"
        if compress:
            content = zlib.compress(content, 6)
            head = b"<< /Length %d /Filter /FlateDecode >>"
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % (7 + 2 * i)
        )
        objects.append(head % len(content) + b"\nstream\n" + content + b"\nendstream")
    return pdf_file(objects, seed=doc.title)


def pdf_file(objects: Sequence[bytes], *, seed: str) -> bytes:
    """Objects 1..n with an exact cross-reference table; object 1 is the catalog and object 5 the Info."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (n, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    file_id = hashlib.md5(seed.encode() + bytes(len(out) % 251)).hexdigest().encode()
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 5 0 R /ID [<%s> <%s>] >>\n" % (
        len(objects) + 1,
        file_id,
        file_id,
    )
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def _sentences_of(paragraph: str) -> list[str]:
    """A paragraph as PDF lines: its sentences, each short enough for one line at 10 pt."""
    parts = [p.strip() for p in paragraph.replace(". ", ".\n").split("\n")]
    return [p for p in parts if p]
