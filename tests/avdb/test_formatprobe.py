"""document-only decided by yara-x (formatprobe): format magic the condition computes instead of spelling it,
flagged; real malware rules of the same shapes (a PE rule in arithmetic form, a PDF exploit, plain strings, a
ransom note), probed and not flagged."""

from __future__ import annotations

import re
import zipfile
from io import BytesIO

import pytest

from overt.avdb.checks import check_document_only
from overt.avdb.findings import BLOCKING, Finding
from overt.avdb.formatprobe import DOCUMENTS, EXECUTABLES, FILES, MESSAGE, check_formats, probe_formats, seed
from overt.avdb.rules import YaraRule
from overt.avdb.ruleview import RuleView
from tests.avdb.samples import rule, ruleset

KEY = '    $k = "Operation NIGHTFALL"'

COMPUTED_MAGIC = [
    ("xor", "(uint32be(0) ^ 0x11111111) == 0x34415557 and $k", ["pdf"]),
    ("shift", "(uint32be(0) >> 8) == 0x255044 and $k", ["pdf"]),
    ("with", "with hdr = uint32be(0) : (hdr == 0x25504446 or hdr == 0xD0CF11E0) and $k", ["pdf", "doc"]),
    ("set", "for any m in (0x25504446, 0xD0CF11E0, 0x7B5C7274) : (uint32be(0) == m) and $k", ["rtf", "xls"]),
    ("mask", "(uint32be(0) & 0xFFFFFF00) == 0x25504400 and $k", ["pdf"]),
    ("minus", "uint32be(0) - 1 == 0x25504445 and $k", ["pdf"]),
    ("int32 negative", "int32be(0) == -791735840 and $k", ["doc", "xls"]),
    ("zip by sum", "uint16(0) + uint16(2) == 0x4B50 + 0x0403 and $k", ["docx", "odt"]),
    ("anything but an executable", "not (uint16(0) == 0x5A4D) and not (uint32(0) == 0x464C457F) and $k", []),
]


def rules_of(text: str) -> list[YaraRule]:
    rs = ruleset({"r.yar": text})
    assert not rs.problems, rs.problems
    return list(rs.yara)


def document_only(rules: list[YaraRule]) -> list[Finding]:
    """What the auditor reports as document-only: the static check and the probe together."""
    static = [f for r in rules for f in check_document_only(RuleView(r))]
    return static + check_formats(rules)


@pytest.mark.parametrize(
    ("why", "condition", "formats"), COMPUTED_MAGIC, ids=[w for w, _, _ in COMPUTED_MAGIC]
)
def test_magic_the_condition_computes_is_document_only(why, condition, formats):
    rules = rules_of(rule("Loader_Component", "OVT-7000", KEY, condition))
    (found,) = document_only(rules)
    assert (found.check, found.severity, found.message) == ("document-only", BLOCKING, MESSAGE)
    for fmt in formats:
        assert fmt in found.evidence.split("matched ")[1].split(";")[0].split("/"), (why, found.evidence)


def test_anything_but_an_executable_says_so():
    (found,) = check_formats(rules_of(rule("R", "OVT-7001", KEY, COMPUTED_MAGIC[-1][1])))
    assert found.evidence == "yara-x matched every seeded file but the executables (pe/elf)"


def test_a_rule_the_static_check_reports_is_not_reported_twice():
    rules = rules_of(rule("R", "OVT-7002", KEY, "uint32be(0) == 0x25504446 and $k"))
    assert check_document_only(RuleView(rules[0]))
    assert check_formats(rules) == []


def test_computed_magic_in_a_private_rule_it_names():
    text = rule("Is_Doc", "OVT-7003", "", "(uint32be(0) ^ 0x11111111) == 0x34415557").replace(
        "rule Is_Doc", "private rule Is_Doc"
    ) + rule("Lure", "OVT-7004", KEY, "Is_Doc and $k")
    (found,) = check_formats(rules_of(text))
    assert found.rule == "Lure"


def test_every_kind_of_pattern_is_seeded_so_that_it_matches():
    strings = (
        '    $w = "annual budget" wide\n'
        '    $x = "negotiating position" xor(3-9)\n'
        "    $h = { 4F 70 65 72 ?? 74 [2-4] 6F ( 6E | 4E ) }\n"
        "    $r = /planning review/"
    )
    rules = rules_of(rule("R", "OVT-7005", strings, "(uint32be(0) >> 8) == 0x255044 and all of them"))
    assert probe_formats(rules) == {("r.yar", "R"): ("pdf",)}


# --- real malware rules of the same shapes: probed, not flagged -------------------------------------------

BENIGN = [
    (
        "PE rule, MZ in arithmetic form",
        '    $a = "Operation NIGHTFALL loader"\n    $b = "please wait"',
        "(uint16(0) ^ 0x1111) == 0x4B5C and all of them",
        ("pe",),
    ),
    (
        "PE rule, MZ and the PE header read through e_lfanew",
        '    $a = "Operation NIGHTFALL loader"',
        "uint16(0) == 0x5A4D and uint32(uint32(0x3C)) == 0x00004550 and $a",
        ("pe",),
    ),
    (
        "ELF rule, magic shifted",
        '    $a = "backup finished"',
        "(uint32be(0) >> 8) == 0x7F454C and $a",
        ("elf",),
    ),
    (
        "plain strings at an offset, no format test",
        '    $a = "Operation NIGHTFALL"',
        "$a in (0..8192)",
        tuple(FILES),
    ),
    (
        "ransom note",
        '    $a = "YOUR FILES ARE ENCRYPTED"\n    $b = "to recover your files"',
        "all of them and #a < 5 and @b[1] < 20000",
        tuple(FILES),
    ),
]


@pytest.mark.parametrize(("why", "strings", "condition", "matched"), BENIGN, ids=[b[0] for b in BENIGN])
def test_real_rules_of_the_same_shape_are_probed_and_not_flagged(why, strings, condition, matched):
    rules = rules_of(rule("Mal_Family", "OVT-7100", strings, condition))
    assert probe_formats(rules) == {("r.yar", "Mal_Family"): matched}, why
    assert document_only(rules) == []


def test_a_pdf_exploit_with_obfuscated_magic_is_code_not_a_document_hunt():
    strings = '    $js = "/JavaScript"\n    $oa = "/OpenAction"\n    $t = "Operation NIGHTFALL"'
    rules = rules_of(
        rule("Pdf_Exploit", "OVT-7101", strings, "(uint32be(0) ^ 0x11111111) == 0x34415557 and all of them")
    )
    assert probe_formats(rules) == {}
    assert document_only(rules) == []
    # the same rule without its actions is a document hunt: the actions are what keeps it quiet
    plain = rules_of(rule("Pdf_Exploit", "OVT-7101", KEY, "(uint32be(0) ^ 0x11111111) == 0x34415557 and $k"))
    assert check_formats(plain)


def test_a_format_rule_naming_a_private_pe_gate_is_not_flagged():
    gate = rule("Is_Pe", "OVT-7102", "", "(uint16(0) ^ 0x1111) == 0x4B5C").replace(
        "rule Is_Pe", "private rule Is_Pe"
    )
    text = gate + rule("Dropper", "OVT-7103", KEY, "(Is_Pe or (uint32be(0) >> 8) == 0x255044) and $k")
    rules = rules_of(text)
    assert probe_formats(rules) == {("r.yar", "Dropper"): ("pdf", "pe")}
    assert check_formats(rules) == []


# --- the seeded files ---------------------------------------------------------------------------------------


def test_every_seeded_file_is_of_its_format_and_carries_the_seeds():
    block = b"\nOperation NIGHTFALL\n"
    starts = {"pdf": b"%PDF-1.7", "doc": b"\xd0\xcf\x11\xe0", "xls": b"\xd0\xcf\x11\xe0", "rtf": b"{\\rtf1"}
    starts |= {k: b"PK\x03\x04" for k in ("docx", "xlsx", "pptx", "odt")}
    starts |= {
        "pe": b"MZ",
        "elf": b"\x7fELF",
        "macho": b"\xcf\xfa\xed\xfe",
        "script": b"#!",
        "png": b"\x89PNG",
    }
    assert set(starts) == set(FILES) and set(DOCUMENTS) | set(EXECUTABLES) < set(FILES)
    for fmt, write in FILES.items():
        data = write(block)
        assert data.startswith(starts[fmt]) and block in data, fmt
    pdf = FILES["pdf"](block)
    xref = int(re.search(rb"startxref\n(\d+)\n%%EOF\n$", pdf).group(1))
    assert pdf[xref:].startswith(b"xref\n")
    for off in re.findall(rb"(\d{10}) 00000 n", pdf):
        assert re.match(rb"\d+ 0 obj\n", pdf[int(off) :])
    with zipfile.ZipFile(BytesIO(FILES["docx"](block))) as z:
        assert z.testzip() is None and "word/document.xml" in z.namelist()


def test_hex_seeds_fill_wildcards_take_minimum_jumps_and_first_alternatives():
    (r,) = rules_of(rule("R", "OVT-7200", "    $h = { 41 ?? 4? [2-4] ( 42 | 43 44 ) ~45 [-] 46 }", "$h"))
    (h,) = r.source.patterns
    assert seed(h) == [bytes.fromhex("41 20 40 2020 42 BA 46")]


@pytest.mark.parametrize(
    "decoy",
    ["not $js", "#js >= 0", "($js or not $js)"],
)
def test_code_a_computed_magic_rule_only_mentions_leaves_it_a_candidate(decoy):
    strings = KEY + '\n    $js = "/JavaScript"'
    condition = f"(uint32be(0) ^ 0x11111111) == 0x34415557 and $k and {decoy}"
    (found,) = check_formats(rules_of(rule("Loader_Component", "OVT-7090", strings, condition)))
    assert (found.check, found.message) == ("document-only", MESSAGE)


def test_a_computed_magic_rule_that_admits_code_is_not_probed_as_document_only():
    strings = KEY + '\n    $js = "/JavaScript"'
    condition = "(uint32be(0) ^ 0x11111111) == 0x34415557 and ($k or $js)"
    assert check_formats(rules_of(rule("Pdf_Js", "OVT-7091", strings, condition))) == []


def test_a_global_rule_spelling_the_magic_is_not_probed_again():
    gate = 'global private rule G {\n  meta:\n    id = "OVT-7092"\n  condition:\n    uint32be(0) == 0x25504446\n}\n'
    rs = ruleset({"g.yar": gate, "r.yar": rule("R", "OVT-7093", KEY, "$k and uint8(4) == 0x2D")})
    assert check_formats(list(rs.yara)) == []
