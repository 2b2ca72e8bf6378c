"""The canary corpus: realistic classified documents and ordinary files, generated in code, never stored.

Every new or changed rule runs over it before release (:mod:`overt.avdb.canary_check`); any hit is an audit
finding. This module owns the corpus: which canaries there are, in which formats and encodings, marked for
which list, at which sizes, and the per-process cache. The documents are built the way their usual writers
build them, so that a rule aimed at real documents fires on them and a heuristic for malformed files does not;
the writers live beside it:

* :mod:`overt.avdb.docmodel`: what a document says (banner, preamble, prose, the register of markings);
* :mod:`overt.avdb.textdocs`: plain text, HTML, RTF and mail;
* :mod:`overt.avdb.pdfdoc`: PDF with an exact cross-reference table;
* :mod:`overt.avdb.zipdocs`: OOXML (docx, xlsx, pptx) and ODF (odt) packages;
* :mod:`overt.avdb.cfb`: OLE2 compound files, Word 97 ``doc`` and Excel ``xls``;
* :mod:`overt.avdb.binaries`: a PE and an ELF executable, a PNG.

Marked documents carry markings as real ones do: banner lines in headers and footers, portion marks, a
classification authority block, and a register of documents whose classification fields hold every marking
of the list (:func:`corpus` takes the list; by default the spellings of ``markings.toml``). Ordinary files are
what every endpoint has: an invoice, a letter, a spreadsheet of numbers, a PE and an ELF executable, a PNG, a
JSON config, a shell script. Sizes go from a few KB to 5 MB, padded with generated prose. Deterministic: the
same list gives the same bytes; built once per process and list.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources

from overt.avdb.binaries import write_elf, write_pe, write_png
from overt.avdb.cfb import write_doc, write_xls
from overt.avdb.docmodel import Doc, marked_doc, ordinary_doc
from overt.avdb.pdfdoc import write_pdf
from overt.avdb.textdocs import write_eml, write_html, write_rtf, write_txt
from overt.avdb.zipdocs import write_docx, write_odt, write_pptx, write_xlsx

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


# --- the corpus -----------------------------------------------------------------------------------------


@functools.cache
def _attachment() -> tuple[str, str, bytes]:
    doc = ordinary_doc("Site visit schedule", ["Tuesday: arrival and site walk.", "Wednesday: workshops."], 4)
    return ("schedule.pdf", "application/pdf", write_pdf(doc, compress=True))


_Writer = Callable[[Doc, bool], bytes]
# format key -> (file format, extension, encoding, groups it is built for, writer(doc, padded))
_MARKED: dict[str, tuple[str, str, str, tuple[str, ...], _Writer]] = {
    "txt": ("txt", "txt", "utf-8", ("multi",), lambda d, _: write_txt(d, "utf-8")),
    "txt-utf16": ("txt", "txt", "utf-16le", ("multi",), lambda d, _: write_txt(d, "utf-16-le")),
    "txt-cp1251": ("txt", "txt", "cp1251", ("ru",), lambda d, _: write_txt(d, "cp1251")),
    "txt-cp1252": ("txt", "txt", "cp1252", ("latin",), lambda d, _: write_txt(d, "cp1252")),
    "txt-gb18030": ("txt", "txt", "gb18030", ("zh",), lambda d, _: write_txt(d, "gb18030")),
    "html": ("html", "html", "utf-8", ("multi",), lambda d, _: write_html(d, "utf-8")),
    "html-cp1251": ("html", "html", "cp1251", ("ru",), lambda d, _: write_html(d, "cp1251")),
    "rtf": ("rtf", "rtf", "cp1252+unicode", ("multi",), lambda d, _: write_rtf(d, "cp1252")),
    "rtf-cp1251": ("rtf", "rtf", "cp1251", ("ru",), lambda d, _: write_rtf(d, "cp1251")),
    "pdf": ("pdf", "pdf", "winansi+utf-16be", ("multi",), lambda d, p: write_pdf(d, compress=not p)),
    "docx": ("docx", "docx", "utf-8", ("multi",), lambda d, p: write_docx(d, stored=p)),
    "xlsx": ("xlsx", "xlsx", "utf-8", ("multi",), lambda d, p: write_xlsx(d, stored=p)),
    "pptx": ("pptx", "pptx", "utf-8", ("multi",), lambda d, p: write_pptx(d, stored=p)),
    "odt": ("odt", "odt", "utf-8", ("multi",), lambda d, p: write_odt(d, stored=p)),
    "doc": ("doc", "doc", "utf-16le", ("multi",), lambda d, _: write_doc(d, unicode=True, codepage=1200)),
    "doc-cp1251": (
        "doc",
        "doc",
        "utf-16le+cp1251",
        ("ru",),
        lambda d, _: write_doc(d, unicode=True, codepage=1251),
    ),
    "doc-cp1252": (
        "doc",
        "doc",
        "cp1252",
        ("latin",),
        lambda d, _: write_doc(d, unicode=False, codepage=1252),
    ),
    "xls": ("xls", "xls", "latin-1+utf-16le", ("multi",), lambda d, _: write_xls(d)),
    "eml": ("eml", "eml", "utf-8", ("multi",), lambda d, _: write_eml(d, "utf-8", _attachment())),
    "eml-cp1251": ("eml", "eml", "cp1251", ("ru",), lambda d, _: write_eml(d, "cp1251", _attachment())),
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
    return write(marked_doc(group, markings, n), True)


def _marked(canonical: Sequence[str], every: Sequence[str]) -> list[Canary]:
    out = []
    for key, (fmt, ext, encoding, groups, write) in _MARKED.items():
        for group in groups:
            small = write(marked_doc(group, canonical, 6), False)
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
    invoice = ordinary_doc(
        "Invoice 2024-117",
        [
            "Bill to: Northwind Supplies Ltd, 12 Harbour Road",
            "2 x Office chair 240.00 EUR",
            "Total due: 480.00 EUR",
        ],
        3,
    )
    letter = ordinary_doc(
        "Dear customer,", ["Thank you for your order of 4 March.", "Kind regards, Anna Weber"], 5
    )
    budget = ordinary_doc(
        "Budget 2024", ["Rent", "Salaries", "Travel", "Equipment", "Training", "Utilities"], 0
    )
    ordinary: list[tuple[str, str, bytes]] = [
        ("invoice.pdf", "pdf", write_pdf(invoice, compress=True)),
        ("letter.docx", "docx", write_docx(letter, stored=False)),
        ("budget.xlsx", "xlsx", write_xlsx(budget, stored=False)),
        ("agenda.pptx", "pptx", write_pptx(letter, stored=False)),
        ("letter.odt", "odt", write_odt(letter, stored=False)),
        ("letter.rtf", "rtf", write_rtf(letter, "cp1252")),
        ("report.doc", "doc", write_doc(letter, unicode=False, codepage=1252)),
        ("figures.xls", "xls", write_xls(budget)),
        ("newsletter.eml", "eml", write_eml(letter, "utf-8", ("logo.png", "image/png", write_png()))),
        ("page.html", "html", write_html(letter, "utf-8")),
        ("notes.txt", "txt", b"Shopping: bread, milk, coffee.\nCall the plumber on Thursday.\n"),
        ("setup.exe", "pe", write_pe()),
        ("tool.elf", "elf", write_elf()),
        ("photo.png", "png", write_png()),
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
