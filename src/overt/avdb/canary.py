"""The canary corpus: realistic classified documents and ordinary files, generated in code, never stored.

Every new or changed rule runs over it before release (:mod:`overt.avdb.canary_check`); any hit is an audit
finding. This module owns the documents only, in every format the auditor knows, built the way their usual
writers build them, so that a rule aimed at real documents fires on them and a heuristic for malformed files
does not:

* OOXML (docx, xlsx, pptx) and ODF (odt): zip packages, ``[Content_Types].xml`` or an uncompressed
  ``mimetype`` first, with the parts Office and LibreOffice need. Unpadded ones are deflated, as Word writes
  them; padded ones are stored, as some generators write them, so their text is also visible to patterns;
* PDF: a catalog, page tree, WinAnsi Type1 font, one content stream per page (deflated when unpadded), an
  Info dictionary (UTF-16BE where text is not Latin), XMP metadata, and a cross-reference table whose offsets
  are exact, with trailer, ``startxref`` and ``%%EOF``;
* RTF (``\\ansicpg1252`` or ``\\ansicpg1251``, ``\\'xx`` and ``\\uN?`` escapes, header, footer, info);
* OLE2 compound files (a small CFB writer: header, FAT, directory): Word 97 ``doc`` (FIB, piece table,
  UTF-16LE or 8-bit text, SummaryInformation) and Excel ``xls`` (a BIFF8 ``Workbook`` stream);
* mail (MIME, with a base64 attachment), plain text and HTML, in UTF-8, UTF-16LE, CP1251, CP1252, GB18030.

Marked documents carry markings as real ones do: banner lines in headers and footers, portion marks, a
classification authority block, and a register of documents whose classification fields hold every marking
of the list (:func:`corpus` takes the list; by default the spellings of ``markings.toml``). Ordinary files are
what every endpoint has: an invoice, a letter, a spreadsheet of numbers, a PE and an ELF executable, a PNG, a
JSON config, a shell script. Sizes go from a few KB to 5 MB, padded with generated prose. Deterministic: the
same list gives the same bytes; built once per process and list. The module is longer than most because each
format's writer is small and they only make sense together.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import io
import random
import struct
import tomllib
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

MARKED = "marked"
ORDINARY = "ordinary"
SMALL = "small"
SIZES = {"64 KB": 64 << 10, "1 MB": 1 << 20, "5 MB": 5 << 20}
# Which marked documents are also built padded to each size (the rest are built once, unpadded).
# fmt: off
PADDED = {
    "64 KB": ("txt", "txt-utf16", "txt-cp1251", "html", "rtf", "pdf", "docx", "xlsx", "pptx", "odt", "doc", "xls",
              "eml"),
    "1 MB": ("pdf", "docx", "doc", "txt"),
    "5 MB": ("pdf", "doc"),
}
# fmt: on
_WHEN = (2024, 3, 12, 10, 15, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Canary:
    name: str
    kind: str  # MARKED or ORDINARY
    data: bytes
    format: str = ""  # "pdf", "docx", "doc", "txt", "pe"...
    size: str = SMALL  # SMALL or a key of SIZES
    encoding: str = ""  # how the text is stored: "utf-8", "utf-16le", "cp1251"...

    def describe(self) -> str:
        """How findings name the canary: 'the marked pdf canary brief-multi-64k.pdf (64 KB, utf-8)'."""
        what = ", ".join(x for x in (self.size, self.encoding) if x)
        return f"the {self.kind} {self.format} canary {self.name} ({what})"


# --- markings -------------------------------------------------------------------------------------------


def default_markings() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(canonical texts, every spelling) of the packaged ``markings.toml``; read with its documented schema."""
    raw = resources.files("overt.avdb").joinpath("markings.toml").read_text(encoding="utf-8")
    entries = tomllib.loads(raw).get("marking", [])
    canonical = tuple(str(e["text"]) for e in entries if e.get("text"))
    every = tuple(dict.fromkeys(s for e in entries for s in (e.get("text"), *e.get("variants", ())) if s))
    return canonical, every


def _script(text: str) -> str:
    """'ru' for Cyrillic, 'zh' for CJK, 'latin' for what CP1252 encodes, else 'other' (Unicode formats only)."""
    if any("\u0400" <= c <= "\u04ff" for c in text):
        return "ru"
    if any("\u3040" <= c <= "\u9fff" or "\uac00" <= c <= "\ud7af" for c in text):
        return "zh"
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        return "other"
    return "latin"


# --- prose ----------------------------------------------------------------------------------------------

_PROSE = {
    "en": (
        "The committee|The regional office|The working group|Our liaison team|The program manager|The review board|Field staff|The planning cell|The analysis section|The steering group",
        "reviewed|approved|discussed|updated|assessed|documented|postponed|summarised|coordinated|validated",
        "the quarterly schedule|the logistics plan|the budget forecast|the staffing request|the training calendar|the supplier contracts|the travel arrangements|the maintenance report|the site survey|the risk register",
        "for the next quarter|with the partner agencies|before the end of the month|in line with the directive|pending further guidance|at the weekly meeting|after the site visit|as requested by headquarters|within the agreed budget|for the northern district",
    ),
    "ru": (
        "Комиссия|Рабочая группа|Отдел планирования|Руководство управления|Группа анализа|Представительство|Служба обеспечения|Штаб|Сектор связи|Координационный совет",
        "рассмотрела|утвердила|обсудила|обновила|оценила|подготовила|согласовала|перенесла|проверила|уточнила",
        "план работ|график поставок|смету расходов|отчёт о проверке|порядок взаимодействия|штатное расписание|программу подготовки|перечень мероприятий|схему охраны|результаты обследования",
        "на следующий квартал|с учётом замечаний|до конца месяца|в соответствии с приказом|по итогам совещания|совместно с партнёрами|в установленные сроки|для северного округа|после выезда на объект|по запросу центра",
    ),
    "zh": (
        "委员会|工作组|计划处|分析科|联络组|领导小组|后勤部门|技术中心",
        "审议了|批准了|讨论了|更新了|评估了|整理了|协调了|核实了",
        "下季度工作计划|物资供应安排|年度预算草案|人员培训方案|设备维护报告|现场勘察结果|合作协议文本|风险评估清单",
        "并报上级审批|按期完成|在周例会上|根据有关规定|会同合作单位|于本月底前|结合实际情况|供领导参阅",
    ),
}
_PORTIONS = ("(U)", "(S//NF)", "(TS//SI//NF)", "(C)", "(S//REL TO USA, FVEY)")


@functools.cache
def _sentences(lang: str) -> tuple[str, ...]:
    rng = random.Random(f"overt-canary-{lang}")
    parts = [p.split("|") for p in _PROSE[lang]]
    out = []
    for _ in range(600):
        s, v, o, t = (rng.choice(p) for p in parts)
        out.append(f"{s}{v}{o}，{t}。" if lang == "zh" else f"{s} {v} {o} {t}.")
    return tuple(out)


def _paragraphs(lang: str, n: int, *, seed: str, portions: bool = False) -> list[str]:
    rng = random.Random(seed)
    pool = _sentences(lang)
    glue = "" if lang == "zh" else " "
    out = []
    for i in range(n):
        text = glue.join(rng.choices(pool, k=rng.randint(3, 6)))
        out.append(f"{_PORTIONS[i % len(_PORTIONS)]} {text}" if portions else text)
    return out


# --- the document model ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Doc:
    lang: str  # "en", "ru" or "zh": the language of the prose and of the labels
    title: str
    banner: str  # "" for ordinary documents
    preamble: tuple[str, ...]
    paragraphs: tuple[str, ...]
    register: tuple[str, ...]  # the lines that carry every marking of the list
    markings: tuple[str, ...]

    def body(self) -> list[str]:
        return [*self.preamble, self.title, *self.paragraphs, *self.register]

    def lines(self) -> list[str]:
        edge = [self.banner] if self.banner else []
        return [*edge, *self.body(), *edge]

    def encodable(self, codec: str) -> _Doc:
        """The document without the register lines ``codec`` cannot store (a CP1251 file has no Chinese)."""

        def ok(s: str) -> bool:
            try:
                s.encode(codec)
            except UnicodeEncodeError:
                return False
            return True

        return _Doc(
            lang=self.lang,
            title=self.title,
            banner=self.banner,
            preamble=self.preamble,
            paragraphs=self.paragraphs,
            register=tuple(r for r in self.register if ok(r)),
            markings=tuple(m for m in self.markings if ok(m)),
        )


_BANNERS = {"en": "TOP SECRET//SI//NOFORN", "ru": "СЕКРЕТНО", "zh": "绝密★启用前"}
_PREAMBLES = {
    "en": (
        "MEMORANDUM FOR THE DIRECTOR, REGIONAL ANALYSIS",
        "Classified By: J. Miller, Chief, Planning Cell",
        "Derived From: Multiple Sources",
        "Declassify On: 20491231",
    ),
    "ru": ("Экз. № 2", "Исх. № 117/дсп от 12.03.2024", "Начальнику управления"),
    "zh": ("文件编号：2024-117", "保密期限：十年", "发至：各处室"),
}
_TITLES = {"en": "Quarterly planning review", "ru": "Доклад о ходе работ", "zh": "关于季度工作计划的报告"}


def _register(lang: str, markings: Sequence[str]) -> tuple[str, ...]:
    rows = []
    for i, m in enumerate(markings, 1):
        if lang == "ru":
            rows.append(f"Рег. № {i:03d}/24  Гриф: {m}  Исполнитель: отдел {i % 7 + 1}  Листов: {i % 19 + 2}")
        elif lang == "zh":
            rows.append(f"编号 2024-{i:03d}  密级：{m}  承办单位：第{i % 7 + 1}处  页数：{i % 19 + 2}")
        else:
            rows.append(
                f"Ref. 2024-{i:04d}  Classification: {m}  Originator: J{i % 7 + 1}  Pages: {i % 19 + 2}"
            )
    return tuple(rows)


def _marked_doc(group: str, markings: Sequence[str], n: int) -> _Doc:
    lang = group if group in ("ru", "zh") else "en"
    mine = [m for m in markings if group == "multi" or _script(m) == group]
    return _Doc(
        lang=lang,
        title=_TITLES[lang],
        banner=_BANNERS[lang],
        preamble=_PREAMBLES[lang],
        paragraphs=tuple(_paragraphs(lang, n, seed=f"marked-{group}", portions=lang == "en")),
        register=_register(lang, mine),
        markings=tuple(mine),
    )


def _ordinary_doc(title: str, lines: Sequence[str], n: int) -> _Doc:
    paragraphs = (*lines, *_paragraphs("en", n, seed=f"ordinary-{title}"))
    return _Doc(
        lang="en", title=title, banner="", preamble=(), paragraphs=paragraphs, register=(), markings=()
    )


# --- text, html, rtf ------------------------------------------------------------------------------------


def _txt(doc: _Doc, codec: str) -> bytes:
    doc = doc.encodable(codec)
    if codec == "utf-8":
        return ("\n\n".join(doc.lines()) + "\n").encode()
    bom = "\ufeff" if codec == "utf-16-le" else ""
    return (bom + "\r\n\r\n".join(doc.lines()) + "\r\n").encode(codec)


def _html(doc: _Doc, codec: str) -> bytes:
    doc = doc.encodable(codec)
    e = html.escape
    banner = f'<div class="banner">{e(doc.banner)}</div>\n' if doc.banner else ""
    body = "\n".join(f"<p>{e(p)}</p>" for p in doc.body())
    charset = {"utf-8": "utf-8", "cp1251": "windows-1251"}[codec]
    page = (
        f'<!DOCTYPE html>\n<html lang="{doc.lang}">\n<head>\n<meta charset="{charset}">\n'
        f"<title>{e(doc.title)}</title>\n<style>.banner{{text-align:center;font-weight:bold;color:#c00}}</style>\n"
        f"</head>\n<body>\n{banner}<h1>{e(doc.title)}</h1>\n{body}\n{banner}</body>\n</html>\n"
    )
    return page.encode(codec)


def _rtf_escape(text: str, codec: str) -> str:
    out = []
    for ch in text:
        if ch in "\\{}":
            out.append("\\" + ch)
        elif " " <= ch < "\x7f":
            out.append(ch)
        else:
            try:
                b = ch.encode(codec)
            except UnicodeEncodeError:
                b = b""
            if len(b) == 1:
                out.append(f"\\'{b[0]:02x}")
            else:  # \uN with N signed 16-bit, one per UTF-16 unit, '?' for readers without Unicode
                units = struct.unpack(f"<{len(ch.encode('utf-16-le')) // 2}h", ch.encode("utf-16-le"))
                out.extend(f"\\u{u}?" for u in units)
    return "".join(out)


def _rtf(doc: _Doc, codec: str) -> bytes:
    cp = codec.removeprefix("cp")
    charset = {"1252": 0, "1251": 204}[cp]
    lang = {"en": 1033, "ru": 1049, "zh": 2052}[doc.lang]

    def x(s: str) -> str:
        return _rtf_escape(s, codec)

    edge = f"\\pard\\qc\\b {x(doc.banner)}\\b0\\par" if doc.banner else ""
    body = "\n".join(f"\\pard\\sa120 {x(p)}\\par" for p in doc.body())
    text = (
        f"{{\\rtf1\\ansi\\ansicpg{cp}\\deff0\\nouicompat\\deflang{lang}"
        f"{{\\fonttbl{{\\f0\\fnil\\fcharset{charset} Calibri;}}}}\n"
        f"{{\\info{{\\title {x(doc.title)}}}{{\\subject {x(doc.banner)}}}{{\\author Planning Cell}}"
        f"{{\\creatim\\yr2024\\mo3\\dy12\\hr10\\min15}}}}\n"
        f"{{\\header {edge}}}\n{{\\footer {edge}}}\n"
        f"\\viewkind4\\uc1 \\f0\\fs22 {edge}\n{body}\n{edge}\n}}\n"
    )
    return text.encode("ascii")


# --- pdf ------------------------------------------------------------------------------------------------


def _pdf_string(text: str) -> bytes:
    """A PDF literal string: PDFDocEncoding where Latin-1 holds it, else UTF-16BE with its BOM."""
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:
        raw = b"\xfe\xff" + text.encode("utf-16-be")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _xmp(doc: _Doc) -> bytes:
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


def _pdf(doc: _Doc, *, compress: bool) -> bytes:
    latin = doc.encodable("cp1252")
    banner = latin.banner if _script(latin.banner) == "latin" else ""
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
    return _pdf_file(objects, seed=doc.title)


def _pdf_file(objects: Sequence[bytes], *, seed: str) -> bytes:
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


# --- zip packages: OOXML and ODF ------------------------------------------------------------------------


def _x(text: str) -> str:
    return html.escape(text, quote=True)


def _package(parts: Sequence[tuple[str, str | bytes]], *, stored: bool) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, body in parts:
            info = zipfile.ZipInfo(name, _WHEN[:6])
            info.compress_type = zipfile.ZIP_STORED if stored or name == "mimetype" else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, body)
    return out.getvalue()


_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PR = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT = "http://schemas.openxmlformats.org/package/2006/content-types"
_OD = "application/vnd.openxmlformats-officedocument"


def _types(overrides: Iterable[tuple[str, str]]) -> str:
    rows = "".join(f'<Override PartName="/{p}" ContentType="{t}"/>' for p, t in overrides)
    return (
        f'{_XML}<Types xmlns="{_CT}"><Default Extension="rels" ContentType="application/vnd.openxmlformats-'
        'package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        f"{rows}</Types>"
    )


def _rels(targets: Iterable[tuple[str, str]]) -> str:
    rows = "".join(
        f'<Relationship Id="rId{i}" Type="{kind}" Target="{target}"/>'
        for i, (kind, target) in enumerate(targets, 1)
    )
    return f'{_XML}<Relationships xmlns="{_PR}">{rows}</Relationships>'


def _core(doc: _Doc) -> tuple[str, str]:
    return (
        "docProps/core.xml",
        f'{_XML}<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-'
        'properties" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<dc:title>{_x(doc.title)}</dc:title><dc:subject>{_x(doc.banner)}</dc:subject>"
        f"<dc:creator>Planning Cell</dc:creator><cp:keywords>{_x('; '.join(doc.markings))}</cp:keywords>"
        f"<cp:contentStatus>{_x(doc.banner)}</cp:contentStatus>"
        '<dcterms:created xsi:type="dcterms:W3CDTF">2024-03-12T09:15:00Z</dcterms:created>'
        "</cp:coreProperties>",
    )


def _ooxml_common(doc: _Doc, main: str, app: str) -> list[tuple[str, str]]:
    return [
        (
            "_rels/.rels",
            _rels(
                [
                    (f"{_R}/officeDocument", main),
                    (f"{_PR}/metadata/core-properties", "docProps/core.xml"),
                    (f"{_R}/extended-properties", "docProps/app.xml"),
                ]
            ),
        ),
        _core(doc),
        (
            "docProps/app.xml",
            f'{_XML}<Properties xmlns="{_R.replace("relationships", "extended-properties")}">'
            f"<Application>{app}</Application><DocSecurity>0</DocSecurity></Properties>",
        ),
    ]


def _docx(doc: _Doc, *, stored: bool) -> bytes:
    def p(text: str, style: str = "") -> str:
        ppr = f'<w:pPr><w:pStyle w:val="{style}"/><w:jc w:val="center"/></w:pPr>' if style else ""
        return f'<w:p>{ppr}<w:r><w:t xml:space="preserve">{_x(text)}</w:t></w:r></w:p>'

    edge = p(doc.banner, "Banner") if doc.banner else "<w:p/>"
    body = "".join(p(t) for t in doc.body())
    document = (
        f'{_XML}<w:document xmlns:w="{_W}" xmlns:r="{_R}"><w:body>{body}'
        '<w:sectPr><w:headerReference w:type="default" r:id="rId2"/>'
        '<w:footerReference w:type="default" r:id="rId3"/><w:pgSz w:w="12240" w:h="15840"/>'
        "</w:sectPr></w:body></w:document>"
    )
    styles = (
        f'{_XML}<w:styles xmlns:w="{_W}"><w:docDefaults><w:rPrDefault><w:rPr><w:rFonts w:ascii="Calibri"/>'
        '<w:sz w:val="22"/></w:rPr></w:rPrDefault></w:docDefaults><w:style w:type="paragraph" w:default="1" '
        'w:styleId="Normal"><w:name w:val="Normal"/></w:style><w:style w:type="paragraph" w:styleId="Banner">'
        '<w:name w:val="Banner"/><w:rPr><w:b/><w:color w:val="C00000"/></w:rPr></w:style></w:styles>'
    )
    doc_type = f"{_OD}.wordprocessingml"
    return _package(
        [
            (
                "[Content_Types].xml",
                _types(
                    [
                        ("word/document.xml", f"{doc_type}.document.main+xml"),
                        ("word/styles.xml", f"{doc_type}.styles+xml"),
                        ("word/header1.xml", f"{doc_type}.header+xml"),
                        ("word/footer1.xml", f"{doc_type}.footer+xml"),
                        ("docProps/core.xml", "application/vnd.openxmlformats-package.core-properties+xml"),
                        ("docProps/app.xml", f"{_OD}.extended-properties+xml"),
                    ]
                ),
            ),
            *_ooxml_common(doc, "word/document.xml", "Microsoft Office Word"),
            ("word/document.xml", document),
            ("word/styles.xml", styles),
            ("word/header1.xml", f'{_XML}<w:hdr xmlns:w="{_W}">{edge}</w:hdr>'),
            ("word/footer1.xml", f'{_XML}<w:ftr xmlns:w="{_W}">{edge}</w:ftr>'),
            (
                "word/_rels/document.xml.rels",
                _rels(
                    [
                        (f"{_R}/styles", "styles.xml"),
                        (f"{_R}/header", "header1.xml"),
                        (f"{_R}/footer", "footer1.xml"),
                    ]
                ),
            ),
        ],
        stored=stored,
    )


def _col(i: int) -> str:
    return "ABCDEFGH"[i]


def _sheet_rows(doc: _Doc) -> list[list[str | float]]:
    if doc.banner:
        rows: list[list[str | float]] = [["Ref", "Title", "Classification", "Originator", "Pages"]]
        for i, m in enumerate(doc.markings, 1):
            rows.append([f"2024-{i:04d}", doc.title, m, f"J{i % 7 + 1}", float(i % 19 + 2)])
        for i, para in enumerate(doc.paragraphs):
            rows.append([f"2024-{len(rows) + i:04d}", para, _PORTIONS[i % len(_PORTIONS)], "J3", 4.0])
        return rows
    rows = [["Item", "Q1", "Q2", "Q3", "Q4"]]
    rng = random.Random(doc.title)
    for i, line in enumerate(doc.paragraphs):
        rows.append([line[:40] or f"Item {i}", *(round(rng.uniform(100, 9000), 2) for _ in range(4))])
    return rows


def _xlsx(doc: _Doc, *, stored: bool) -> bytes:
    rows = _sheet_rows(doc)
    shared: dict[str, int] = {}
    cells = []
    for r, row in enumerate(rows, 1):
        cs = []
        for c, value in enumerate(row):
            ref = f"{_col(c)}{r}"
            if isinstance(value, str):
                idx = shared.setdefault(value, len(shared))
                cs.append(f'<c r="{ref}" t="s"><v>{idx}</v></c>')
            else:
                cs.append(f'<c r="{ref}"><v>{value}</v></c>')
        cells.append(f'<row r="{r}">{"".join(cs)}</row>')
    ns = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    edge = f"&amp;C&amp;B{_x(doc.banner)}" if doc.banner else "&amp;CPage &amp;P"
    sheet = (
        f'{_XML}<worksheet xmlns="{ns}"><sheetData>{"".join(cells)}</sheetData>'
        f"<headerFooter><oddHeader>{edge}</oddHeader><oddFooter>{edge}</oddFooter></headerFooter></worksheet>"
    )
    sst = "".join(f"<si><t>{_x(s)}</t></si>" for s in shared)
    sheet_type = f"{_OD}.spreadsheetml"
    return _package(
        [
            (
                "[Content_Types].xml",
                _types(
                    [
                        ("xl/workbook.xml", f"{sheet_type}.sheet.main+xml"),
                        ("xl/worksheets/sheet1.xml", f"{sheet_type}.worksheet+xml"),
                        ("xl/sharedStrings.xml", f"{sheet_type}.sharedStrings+xml"),
                        ("xl/styles.xml", f"{sheet_type}.styles+xml"),
                        ("docProps/core.xml", "application/vnd.openxmlformats-package.core-properties+xml"),
                        ("docProps/app.xml", f"{_OD}.extended-properties+xml"),
                    ]
                ),
            ),
            *_ooxml_common(doc, "xl/workbook.xml", "Microsoft Excel"),
            (
                "xl/workbook.xml",
                f'{_XML}<workbook xmlns="{ns}" xmlns:r="{_R}"><sheets><sheet name="Register" sheetId="1" '
                'r:id="rId1"/></sheets></workbook>',
            ),
            (
                "xl/_rels/workbook.xml.rels",
                _rels(
                    [
                        (f"{_R}/worksheet", "worksheets/sheet1.xml"),
                        (f"{_R}/sharedStrings", "sharedStrings.xml"),
                        (f"{_R}/styles", "styles.xml"),
                    ]
                ),
            ),
            ("xl/worksheets/sheet1.xml", sheet),
            (
                "xl/sharedStrings.xml",
                f'{_XML}<sst xmlns="{ns}" count="{len(shared)}" uniqueCount="{len(shared)}">{sst}</sst>',
            ),
            (
                "xl/styles.xml",
                f'{_XML}<styleSheet xmlns="{ns}"><fonts count="1"><font><sz val="11"/><name val="Calibri"/>'
                '</font></fonts><fills count="1"><fill><patternFill patternType="none"/></fill></fills>'
                '<borders count="1"><border/></borders><cellXfs count="1"><xf numFmtId="0" fontId="0" '
                'fillId="0" borderId="0"/></cellXfs></styleSheet>',
            ),
        ],
        stored=stored,
    )


_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
_P = "http://schemas.openxmlformats.org/presentationml/2006/main"
_THEME = (
    f'{_XML}<a:theme xmlns:a="{_A}" name="Office Theme"><a:themeElements><a:clrScheme name="Office">'
    + "".join(
        f'<a:{n}><a:srgbClr val="{v}"/></a:{n}>'
        for n, v in (
            ("dk1", "000000"),
            ("lt1", "FFFFFF"),
            ("dk2", "44546A"),
            ("lt2", "E7E6E6"),
            ("accent1", "4472C4"),
            ("accent2", "ED7D31"),
            ("accent3", "A5A5A5"),
            ("accent4", "FFC000"),
            ("accent5", "5B9BD5"),
            ("accent6", "70AD47"),
            ("hlink", "0563C1"),
            ("folHlink", "954F72"),
        )
    )
    + '</a:clrScheme><a:fontScheme name="Office"><a:majorFont><a:latin typeface="Calibri Light"/>'
    '<a:ea typeface=""/><a:cs typeface=""/></a:majorFont><a:minorFont><a:latin typeface="Calibri"/>'
    '<a:ea typeface=""/><a:cs typeface=""/></a:minorFont></a:fontScheme><a:fmtScheme name="Office">'
    + "".join(
        f"<a:{lst}>" + '<a:solidFill><a:schemeClr val="phClr"/></a:solidFill>' * 3 + f"</a:{lst}>"
        for lst in ("fillStyleLst",)
    )
    + '<a:lnStyleLst><a:ln w="6350"/><a:ln w="12700"/><a:ln w="19050"/></a:lnStyleLst>'
    "<a:effectStyleLst><a:effectStyle><a:effectLst/></a:effectStyle><a:effectStyle><a:effectLst/>"
    "</a:effectStyle><a:effectStyle><a:effectLst/></a:effectStyle></a:effectStyleLst>"
    + "<a:bgFillStyleLst>"
    + '<a:solidFill><a:schemeClr val="phClr"/></a:solidFill>' * 3
    + "</a:bgFillStyleLst></a:fmtScheme></a:themeElements></a:theme>"
)


def _shape(n: int, texts: Sequence[str]) -> str:
    paras = "".join(f'<a:p><a:r><a:rPr lang="en-US"/><a:t>{_x(t)}</a:t></a:r></a:p>' for t in texts)
    return (
        f'<p:sp><p:nvSpPr><p:cNvPr id="{n}" name="Text {n}"/><p:cNvSpPr txBox="1"/><p:nvPr/></p:nvSpPr>'
        f'<p:spPr><a:xfrm><a:off x="457200" y="{n * 600000}"/><a:ext cx="8229600" cy="600000"/></a:xfrm>'
        f'<a:prstGeom prst="rect"><a:avLst/></a:prstGeom></p:spPr><p:txBody><a:bodyPr/><a:lstStyle/>{paras}'
        "</p:txBody></p:sp>"
    )


def _slide(root: str, shapes: str) -> str:
    tree = (
        '<p:cSld><p:spTree><p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr>'
        f"<p:grpSpPr/>{shapes}</p:spTree></p:cSld>"
    )
    extra = {
        "sldMaster": '<p:clrMap bg1="lt1" tx1="dk1" bg2="lt2" tx2="dk2" accent1="accent1" accent2="accent2" '
        'accent3="accent3" accent4="accent4" accent5="accent5" accent6="accent6" hlink="hlink" '
        'folHlink="folHlink"/><p:sldLayoutIdLst><p:sldLayoutId id="2147483649" r:id="rId1"/></p:sldLayoutIdLst>',
        "sldLayout": "<p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr>",
        "sld": "<p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr>",
    }[root]
    return f'{_XML}<p:{root} xmlns:a="{_A}" xmlns:r="{_R}" xmlns:p="{_P}">{tree}{extra}</p:{root}>'


def _pptx(doc: _Doc, *, stored: bool) -> bytes:
    body = doc.body()
    chunks = [body[i : i + 16] for i in range(0, len(body), 16)]
    edge = [doc.banner] if doc.banner else []
    slides = [
        _slide("sld", _shape(2, [*edge, doc.title]) + _shape(3, chunk) + _shape(9, edge)) for chunk in chunks
    ]
    pml = f"{_OD}.presentationml"
    parts: list[tuple[str, str]] = [
        (
            "[Content_Types].xml",
            _types(
                [
                    ("ppt/presentation.xml", f"{pml}.presentation.main+xml"),
                    ("ppt/slideMasters/slideMaster1.xml", f"{pml}.slideMaster+xml"),
                    ("ppt/slideLayouts/slideLayout1.xml", f"{pml}.slideLayout+xml"),
                    ("ppt/theme/theme1.xml", f"{_OD}.theme+xml"),
                    *((f"ppt/slides/slide{i}.xml", f"{pml}.slide+xml") for i in range(1, len(slides) + 1)),
                    ("docProps/core.xml", "application/vnd.openxmlformats-package.core-properties+xml"),
                    ("docProps/app.xml", f"{_OD}.extended-properties+xml"),
                ]
            ),
        ),
        *_ooxml_common(doc, "ppt/presentation.xml", "Microsoft Office PowerPoint"),
        (
            "ppt/presentation.xml",
            f'{_XML}<p:presentation xmlns:a="{_A}" xmlns:r="{_R}" xmlns:p="{_P}"><p:sldMasterIdLst>'
            '<p:sldMasterId id="2147483648" r:id="rId1"/></p:sldMasterIdLst><p:sldIdLst>'
            + "".join(f'<p:sldId id="{256 + i}" r:id="rId{i + 3}"/>' for i in range(len(slides)))
            + '</p:sldIdLst><p:sldSz cx="9144000" cy="6858000"/><p:notesSz cx="6858000" cy="9144000"/>'
            "</p:presentation>",
        ),
        (
            "ppt/_rels/presentation.xml.rels",
            _rels(
                [
                    (f"{_R}/slideMaster", "slideMasters/slideMaster1.xml"),
                    (f"{_R}/theme", "theme/theme1.xml"),
                    *((f"{_R}/slide", f"slides/slide{i}.xml") for i in range(1, len(slides) + 1)),
                ]
            ),
        ),
        ("ppt/slideMasters/slideMaster1.xml", _slide("sldMaster", "")),
        (
            "ppt/slideMasters/_rels/slideMaster1.xml.rels",
            _rels(
                [
                    (f"{_R}/slideLayout", "../slideLayouts/slideLayout1.xml"),
                    (f"{_R}/theme", "../theme/theme1.xml"),
                ]
            ),
        ),
        ("ppt/slideLayouts/slideLayout1.xml", _slide("sldLayout", "")),
        (
            "ppt/slideLayouts/_rels/slideLayout1.xml.rels",
            _rels([(f"{_R}/slideMaster", "../slideMasters/slideMaster1.xml")]),
        ),
        ("ppt/theme/theme1.xml", _THEME),
    ]
    for i, s in enumerate(slides, 1):
        parts.append((f"ppt/slides/slide{i}.xml", s))
        parts.append(
            (
                f"ppt/slides/_rels/slide{i}.xml.rels",
                _rels([(f"{_R}/slideLayout", "../slideLayouts/slideLayout1.xml")]),
            )
        )
    return _package(parts, stored=stored)


_ODF = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0" office:version="1.3"'
)


def _odt(doc: _Doc, *, stored: bool) -> bytes:
    paras = "".join(f'<text:p text:style-name="Standard">{_x(t)}</text:p>' for t in doc.body())
    edge = f'<text:p text:style-name="Banner">{_x(doc.banner)}</text:p>' if doc.banner else "<text:p/>"
    content = (
        f"{_XML}<office:document-content {_ODF}><office:body><office:text>{edge}{paras}{edge}"
        "</office:text></office:body></office:document-content>"
    )
    styles = (
        f'{_XML}<office:document-styles {_ODF}><office:styles><style:style style:name="Standard" '
        'style:family="paragraph"/><style:style style:name="Banner" style:family="paragraph">'
        '<style:paragraph-properties fo:text-align="center"/><style:text-properties fo:font-weight="bold" '
        'fo:color="#c00000"/></style:style></office:styles><office:automatic-styles><style:page-layout '
        'style:name="pm1"/></office:automatic-styles><office:master-styles><style:master-page '
        f'style:name="Standard" style:page-layout-name="pm1"><style:header>{edge}</style:header>'
        f"<style:footer>{edge}</style:footer></style:master-page></office:master-styles></office:document-styles>"
    )
    keywords = "".join(f"<meta:keyword>{_x(m)}</meta:keyword>" for m in doc.markings)
    meta = (
        f"{_XML}<office:document-meta {_ODF}><office:meta><dc:title>{_x(doc.title)}</dc:title>"
        f"<dc:subject>{_x(doc.banner)}</dc:subject>{keywords}"
        "<meta:generator>LibreOffice/7.6.4.1$Linux_X86_64</meta:generator>"
        "<meta:creation-date>2024-03-12T10:15:00</meta:creation-date></office:meta></office:document-meta>"
    )
    entries = "".join(
        f'<manifest:file-entry manifest:full-path="{p}" manifest:media-type="text/xml"/>'
        for p in ("content.xml", "styles.xml", "meta.xml")
    )
    manifest = (
        f'{_XML}<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
        'manifest:version="1.3"><manifest:file-entry manifest:full-path="/" manifest:version="1.3" '
        f'manifest:media-type="application/vnd.oasis.opendocument.text"/>{entries}</manifest:manifest>'
    )
    return _package(
        [
            ("mimetype", "application/vnd.oasis.opendocument.text"),
            ("content.xml", content),
            ("styles.xml", styles),
            ("meta.xml", meta),
            ("META-INF/manifest.xml", manifest),
        ],
        stored=stored,
    )


# --- OLE2 compound files: doc and xls -------------------------------------------------------------------

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


def _word_document(doc: _Doc, *, unicode: bool) -> tuple[bytes, bytes]:
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


def _doc(doc: _Doc, *, unicode: bool, codepage: int) -> bytes:
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


def _xls(doc: _Doc) -> bytes:
    rows = _sheet_rows(doc)
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


# --- mail -----------------------------------------------------------------------------------------------


def _eml(doc: _Doc, codec: str, attachment: tuple[str, str, bytes]) -> bytes:
    doc = doc.encodable(codec)
    charset = {"utf-8": "utf-8", "cp1251": "windows-1251"}[codec]
    subject = f"[{doc.banner}] {doc.title}" if doc.banner else doc.title
    try:
        subject.encode("ascii")
        encoded_subject = subject
    except UnicodeEncodeError:
        encoded_subject = f"=?{charset}?B?{base64.b64encode(subject.encode(codec)).decode()}?="
    name, mime, data = attachment
    b64 = base64.b64encode(data).decode()
    b64 = "\r\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))
    boundary = "----=_Part_" + hashlib.sha256(doc.title.encode() + data[:64]).hexdigest()[:24]
    head = (
        "From: Planning Cell <planning@example.org>\r\nTo: Regional Office <regional@example.org>\r\n"
        f"Subject: {encoded_subject}\r\nDate: Tue, 12 Mar 2024 10:15:00 +0100\r\n"
        f"Message-ID: <{boundary[12:]}@example.org>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
        "This is a multi-part message in MIME format.\r\n"
    )
    text = "\r\n\r\n".join(doc.lines()) + "\r\n"
    parts = (
        f"--{boundary}\r\nContent-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode() + text.encode(codec)
    parts += (
        f'\r\n--{boundary}\r\nContent-Type: {mime}; name="{name}"\r\nContent-Transfer-Encoding: base64\r\n'
        f'Content-Disposition: attachment; filename="{name}"\r\n\r\n{b64}\r\n--{boundary}--\r\n'
    ).encode()
    return head.encode() + parts


# --- ordinary executables and images --------------------------------------------------------------------


def _pe() -> bytes:
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


def _elf() -> bytes:
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


def _png() -> bytes:
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


# --- the corpus -----------------------------------------------------------------------------------------


@functools.cache
def _attachment() -> tuple[str, str, bytes]:
    doc = _ordinary_doc(
        "Site visit schedule", ["Tuesday: arrival and site walk.", "Wednesday: workshops."], 4
    )
    return ("schedule.pdf", "application/pdf", _pdf(doc, compress=True))


_Writer = Callable[[_Doc, bool], bytes]
# format key -> (file format, extension, encoding, groups it is built for, writer(doc, padded))
_MARKED: dict[str, tuple[str, str, str, tuple[str, ...], _Writer]] = {
    "txt": ("txt", "txt", "utf-8", ("multi",), lambda d, _: _txt(d, "utf-8")),
    "txt-utf16": ("txt", "txt", "utf-16le", ("multi",), lambda d, _: _txt(d, "utf-16-le")),
    "txt-cp1251": ("txt", "txt", "cp1251", ("ru",), lambda d, _: _txt(d, "cp1251")),
    "txt-cp1252": ("txt", "txt", "cp1252", ("latin",), lambda d, _: _txt(d, "cp1252")),
    "txt-gb18030": ("txt", "txt", "gb18030", ("zh",), lambda d, _: _txt(d, "gb18030")),
    "html": ("html", "html", "utf-8", ("multi",), lambda d, _: _html(d, "utf-8")),
    "html-cp1251": ("html", "html", "cp1251", ("ru",), lambda d, _: _html(d, "cp1251")),
    "rtf": ("rtf", "rtf", "cp1252+unicode", ("multi",), lambda d, _: _rtf(d, "cp1252")),
    "rtf-cp1251": ("rtf", "rtf", "cp1251", ("ru",), lambda d, _: _rtf(d, "cp1251")),
    "pdf": ("pdf", "pdf", "winansi+utf-16be", ("multi",), lambda d, p: _pdf(d, compress=not p)),
    "docx": ("docx", "docx", "utf-8", ("multi",), lambda d, p: _docx(d, stored=p)),
    "xlsx": ("xlsx", "xlsx", "utf-8", ("multi",), lambda d, p: _xlsx(d, stored=p)),
    "pptx": ("pptx", "pptx", "utf-8", ("multi",), lambda d, p: _pptx(d, stored=p)),
    "odt": ("odt", "odt", "utf-8", ("multi",), lambda d, p: _odt(d, stored=p)),
    "doc": ("doc", "doc", "utf-16le", ("multi",), lambda d, _: _doc(d, unicode=True, codepage=1200)),
    "doc-cp1251": (
        "doc",
        "doc",
        "utf-16le+cp1251",
        ("ru",),
        lambda d, _: _doc(d, unicode=True, codepage=1251),
    ),
    "doc-cp1252": ("doc", "doc", "cp1252", ("latin",), lambda d, _: _doc(d, unicode=False, codepage=1252)),
    "xls": ("xls", "xls", "latin-1+utf-16le", ("multi",), lambda d, _: _xls(d)),
    "eml": ("eml", "eml", "utf-8", ("multi",), lambda d, _: _eml(d, "utf-8", _attachment())),
    "eml-cp1251": ("eml", "eml", "cp1251", ("ru",), lambda d, _: _eml(d, "cp1251", _attachment())),
}
_STEMS = {
    "txt": "memo",
    "html": "bulletin",
    "rtf": "report",
    "pdf": "brief",
    "docx": "plan",
    "xlsx": "register",
    "pptx": "briefing",
    "odt": "minutes",
    "doc": "minutes",
    "xls": "register",
    "eml": "message",
}


def _fit(build: Callable[[int], bytes], target: int) -> bytes:
    """``build(n)`` with n paragraphs chosen so that the result is about ``target`` bytes: a linear estimate
    from two small builds, then one secant step where the format does not grow linearly (slides, sectors)."""
    a = len(build(8))
    per = max(1.0, (len(build(24)) - a) / 16)
    n = max(1, round(8 + (target - a) / per))
    data = build(n)
    if abs(len(data) - target) > target // 10 and n > 8:
        per = max(1.0, (len(data) - a) / (n - 8))
        data = build(max(1, round(8 + (target - a) / per)))
    return data


def _padded(write: _Writer, group: str, markings: Sequence[str], n: int) -> bytes:
    return write(_marked_doc(group, markings, n), True)


def _marked(canonical: Sequence[str], every: Sequence[str]) -> list[Canary]:
    out = []
    for key, (fmt, ext, encoding, groups, write) in _MARKED.items():
        for group in groups:
            small = write(_marked_doc(group, canonical, 6), False)
            tag = f"-{key.split('-', 1)[1]}" if "-" in key else ""
            stem = f"{_STEMS[fmt]}-{group}"
            out.append(
                Canary(
                    name=f"{stem}-small{tag}.{ext}", kind=MARKED, data=small, format=fmt, encoding=encoding
                )
            )
            for label, target in SIZES.items():
                if key in PADDED[label]:
                    data = _fit(functools.partial(_padded, write, group, every), target)
                    short = label.replace(" KB", "k").replace(" MB", "m")
                    out.append(
                        Canary(
                            name=f"{stem}-{short}{tag}.{ext}",
                            kind=MARKED,
                            data=data,
                            format=fmt,
                            size=label,
                            encoding=encoding,
                        )
                    )
    return out


def _ordinary() -> list[Canary]:
    invoice = _ordinary_doc(
        "Invoice 2024-117",
        [
            "Bill to: Northwind Supplies Ltd, 12 Harbour Road",
            "2 x Office chair 240.00 EUR",
            "Total due: 480.00 EUR",
        ],
        3,
    )
    letter = _ordinary_doc(
        "Dear customer,", ["Thank you for your order of 4 March.", "Kind regards, Anna Weber"], 5
    )
    budget = _ordinary_doc(
        "Budget 2024", ["Rent", "Salaries", "Travel", "Equipment", "Training", "Utilities"], 0
    )
    ordinary: list[tuple[str, str, bytes]] = [
        ("invoice.pdf", "pdf", _pdf(invoice, compress=True)),
        ("letter.docx", "docx", _docx(letter, stored=False)),
        ("budget.xlsx", "xlsx", _xlsx(budget, stored=False)),
        ("agenda.pptx", "pptx", _pptx(letter, stored=False)),
        ("letter.odt", "odt", _odt(letter, stored=False)),
        ("letter.rtf", "rtf", _rtf(letter, "cp1252")),
        ("report.doc", "doc", _doc(letter, unicode=False, codepage=1252)),
        ("figures.xls", "xls", _xls(budget)),
        ("newsletter.eml", "eml", _eml(letter, "utf-8", ("logo.png", "image/png", _png()))),
        ("page.html", "html", _html(letter, "utf-8")),
        ("notes.txt", "txt", b"Shopping: bread, milk, coffee.\nCall the plumber on Thursday.\n"),
        ("setup.exe", "pe", _pe()),
        ("tool.elf", "elf", _elf()),
        ("photo.png", "png", _png()),
        ("config.json", "json", b'{"server": "example.org", "port": 8443, "debug": false, "retries": 3}\n'),
        (
            "build.sh",
            "sh",
            b'#!/bin/sh\nset -eu\ncd "$(dirname "$0")"\nmake all\nmake install PREFIX=/usr/local\n',
        ),
    ]
    return [Canary(name=n, kind=ORDINARY, data=d, format=f) for n, f, d in ordinary]


@functools.lru_cache(maxsize=4)
def _build(canonical: tuple[str, ...], every: tuple[str, ...]) -> tuple[Canary, ...]:
    return (*_marked(canonical, every), *_ordinary())


def corpus(markings: Sequence[str] | None = None) -> list[Canary]:
    """Every canary, marked for ``markings`` (default: the packaged list; unpadded documents then carry the
    canonical spellings, padded ones every variant). Built once per process and list."""
    if markings is None:
        canonical, every = default_markings()
    else:
        canonical = every = tuple(dict.fromkeys(markings))
    return list(_build(canonical, every))
