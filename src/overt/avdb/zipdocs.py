"""Canary writers for the zip-packaged office formats: OOXML (docx, xlsx, pptx) and ODF (odt).

Each package starts as its usual writer starts it (``[Content_Types].xml`` first, or an uncompressed
``mimetype``) and holds the parts Office and LibreOffice need to open it: relationships, core and app
properties, styles, headers and footers with the banner, a theme and slide master for pptx. Unpadded
packages are deflated, as Word writes them; padded ones are stored, as some generators write them, so their
text is also visible to patterns. Every member has one fixed timestamp, so the bytes are deterministic. Which
documents are built is :mod:`overt.avdb.canary`'s job.
"""

from __future__ import annotations

import html
import io
import zipfile
from collections.abc import Iterable, Sequence

from overt.avdb.docmodel import Doc, sheet_rows

_WHEN = (2024, 3, 12, 10, 15, 0)


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


def _core(doc: Doc) -> tuple[str, str]:
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


def _ooxml_common(doc: Doc, main: str, app: str) -> list[tuple[str, str]]:
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


def write_docx(doc: Doc, *, stored: bool) -> bytes:
    """A Word document; ``stored`` leaves the members uncompressed."""

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


_SML = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def _worksheet(doc: Doc) -> tuple[str, list[str]]:
    """The register sheet's XML (banner in its header and footer) and its shared strings, in order."""
    rows = sheet_rows(doc)
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
    edge = f"&amp;C&amp;B{_x(doc.banner)}" if doc.banner else "&amp;CPage &amp;P"
    sheet = (
        f'{_XML}<worksheet xmlns="{_SML}"><sheetData>{"".join(cells)}</sheetData>'
        f"<headerFooter><oddHeader>{edge}</oddHeader><oddFooter>{edge}</oddFooter></headerFooter></worksheet>"
    )
    return sheet, list(shared)


def write_xlsx(doc: Doc, *, stored: bool) -> bytes:
    """An Excel workbook of :func:`~overt.avdb.docmodel.sheet_rows`; ``stored`` leaves the members
    uncompressed."""
    sheet, shared = _worksheet(doc)
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
                f'{_XML}<workbook xmlns="{_SML}" xmlns:r="{_R}"><sheets><sheet name="Register" sheetId="1" '
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
                f'{_XML}<sst xmlns="{_SML}" count="{len(shared)}" uniqueCount="{len(shared)}">{sst}</sst>',
            ),
            (
                "xl/styles.xml",
                f'{_XML}<styleSheet xmlns="{_SML}"><fonts count="1"><font><sz val="11"/><name val="Calibri"/>'
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


def _pptx_frame(doc: Doc, count: int) -> list[tuple[str, str]]:
    """Every part of a presentation of ``count`` slides but the slides: types, properties, master, layout."""
    pml = f"{_OD}.presentationml"
    return [
        (
            "[Content_Types].xml",
            _types(
                [
                    ("ppt/presentation.xml", f"{pml}.presentation.main+xml"),
                    ("ppt/slideMasters/slideMaster1.xml", f"{pml}.slideMaster+xml"),
                    ("ppt/slideLayouts/slideLayout1.xml", f"{pml}.slideLayout+xml"),
                    ("ppt/theme/theme1.xml", f"{_OD}.theme+xml"),
                    *((f"ppt/slides/slide{i}.xml", f"{pml}.slide+xml") for i in range(1, count + 1)),
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
            + "".join(f'<p:sldId id="{256 + i}" r:id="rId{i + 3}"/>' for i in range(count))
            + '</p:sldIdLst><p:sldSz cx="9144000" cy="6858000"/><p:notesSz cx="6858000" cy="9144000"/>'
            "</p:presentation>",
        ),
        (
            "ppt/_rels/presentation.xml.rels",
            _rels(
                [
                    (f"{_R}/slideMaster", "slideMasters/slideMaster1.xml"),
                    (f"{_R}/theme", "theme/theme1.xml"),
                    *((f"{_R}/slide", f"slides/slide{i}.xml") for i in range(1, count + 1)),
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


def write_pptx(doc: Doc, *, stored: bool) -> bytes:
    """A presentation of 16 paragraphs a slide; ``stored`` leaves the members uncompressed."""
    body = doc.body()
    chunks = [body[i : i + 16] for i in range(0, len(body), 16)]
    edge = [doc.banner] if doc.banner else []
    slides = [
        _slide("sld", _shape(2, [*edge, doc.title]) + _shape(3, chunk) + _shape(9, edge)) for chunk in chunks
    ]
    parts = _pptx_frame(doc, len(slides))
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


def write_odt(doc: Doc, *, stored: bool) -> bytes:
    """An OpenDocument text; ``stored`` leaves the members uncompressed (``mimetype`` always is)."""
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
