"""The canary corpus is made of valid documents, and no rule tree can switch canaries off.

The documents are checked with independent readers: zipfile and ElementTree for the packages, a reading of
the cross-reference table for PDF, a compound-file reader written here from the CFB layout (olefile is not a
dependency), the email package for mail. The disguises are the ones issue 14 lists: a ``global`` size gate in
another file, ``filesize`` bounds in the hunting rule, a duplicate rule name in a second file; benign rules in
the same trees (EICAR, exploits, maldocs) must stay quiet.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import io
import re
import struct
import zipfile
import zlib
from xml.etree import ElementTree

import pytest

from overt.avdb.canary import MARKED, ORDINARY, SIZES, Canary, corpus
from overt.avdb.canary_check import check_canaries, lift_filesize
from overt.avdb.findings import Finding
from overt.avdb.rules import RuleSet

from .samples import EICAR_RULE, hdb, rule, ruleset

# --- the documents are valid ----------------------------------------------------------------------------

MAIN_PART = {"docx": "word/document.xml", "xlsx": "xl/workbook.xml", "pptx": "ppt/presentation.xml"}


def of_format(*formats: str) -> list[Canary]:
    found = [c for c in corpus() if c.format in formats]
    assert found, formats
    return found


def check_ooxml(z: zipfile.ZipFile, fmt: str) -> None:
    names = z.namelist()
    assert names[0] == "[Content_Types].xml"
    assert {"_rels/.rels", "docProps/core.xml", MAIN_PART[fmt]} <= set(names)
    types = ElementTree.fromstring(z.read("[Content_Types].xml"))
    overrides = [e.get("PartName", "") for e in types if e.tag.endswith("Override")]
    assert overrides and all(p.lstrip("/") in names for p in overrides)
    for rels in (n for n in names if n.endswith(".rels")):
        base = rels.replace("_rels/", "").removesuffix(".rels").rsplit("/", 1)[0] if "/" in rels[6:] else ""
        for rel in ElementTree.fromstring(z.read(rels)):
            target = "/".join(p for p in f"{base}/{rel.get('Target')}".split("/") if p)
            while "/../" in f"/{target}":
                target = re.sub(r"[^/]+/\.\./", "", target, count=1)
            assert target in names, (rels, rel.get("Target"))


def test_ooxml_and_odf_canaries_are_valid_packages() -> None:
    for c in of_format("docx", "xlsx", "pptx", "odt"):
        with zipfile.ZipFile(io.BytesIO(c.data)) as z:
            assert z.testzip() is None, c.name
            for name in z.namelist():
                if name.endswith((".xml", ".rels")):
                    ElementTree.fromstring(z.read(name))  # well-formed
            if c.format == "odt":
                first = z.infolist()[0]
                assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED
                assert z.read("mimetype") == b"application/vnd.oasis.opendocument.text"
                assert c.data[30:38] == b"mimetype"  # where file(1) and libmagic look
                assert {"content.xml", "styles.xml", "meta.xml", "META-INF/manifest.xml"} <= set(z.namelist())
            else:
                check_ooxml(z, c.format)


def check_pdf(data: bytes) -> None:
    assert data.startswith(b"%PDF-1.") and data.endswith(b"%%EOF\n")
    start = re.search(rb"startxref\n(\d+)\n%%EOF\n$", data)
    assert start is not None
    xref = int(start.group(1))
    head = re.match(rb"xref\n0 (\d+)\n", data[xref:])
    assert head is not None
    count = int(head.group(1))
    table = data[xref + head.end() : xref + head.end() + 20 * count]
    entries = [table[i : i + 20] for i in range(0, len(table), 20)]
    assert entries[0] == b"0000000000 65535 f \n"
    for n, entry in enumerate(entries[1:], 1):
        assert entry.endswith(b" 00000 n \n")
        offset = int(entry[:10])
        assert data[offset:].startswith(b"%d 0 obj\n" % n), n
    trailer = re.search(rb"trailer\n<<(.*?)>>\nstartxref", data, re.S)
    assert (
        trailer is not None
        and b"/Size %d " % count in trailer.group(1)
        and b"/Root 1 0 R" in trailer.group(1)
    )
    streams = list(
        re.finditer(
            rb"<< /(?:Type /Metadata /Subtype /XML /)?Length (\d+)( /Filter /FlateDecode)? >>\nstream\n", data
        )
    )
    assert len(streams) == data.count(b"\nendstream")
    for m in streams:
        body = data[m.end() : m.end() + int(m.group(1))]
        assert data[m.end() + len(body) :].startswith(b"\nendstream")
        if m.group(2):
            zlib.decompress(body)


def test_pdf_canaries_have_exact_cross_reference_tables() -> None:
    for c in of_format("pdf"):
        check_pdf(c.data)
        assert b"/JavaScript" not in c.data and b"/OpenAction" not in c.data and b"/JS" not in c.data


FREE, END, FATSECT = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD


def read_cfb(data: bytes) -> dict[str, bytes]:
    """The streams of a version 3 compound file, checking the header, FAT and directory on the way."""
    assert data[:8] == bytes.fromhex("D0CF11E0A1B11AE1") and data[8:24] == bytes(16)
    minor, major, order, shift, mini_shift = struct.unpack_from("<HHHHH", data, 24)
    assert (minor, major, order, shift, mini_shift) == (0x3E, 3, 0xFFFE, 9, 6)
    n_fat, first_dir, _, cutoff, first_mini, n_mini, first_difat, n_difat = struct.unpack_from(
        "<8I", data, 44
    )
    assert (cutoff, first_mini, n_mini, first_difat, n_difat) == (4096, END, 0, END, 0)
    assert len(data) % 512 == 0
    difat = struct.unpack_from("<109I", data, 76)
    assert all(d == FREE for d in difat[n_fat:])

    def sector(n: int) -> bytes:
        assert 0 <= n < len(data) // 512 - 1
        return data[512 + 512 * n : 1024 + 512 * n]

    fat: list[int] = []
    for n in difat[:n_fat]:
        fat += struct.unpack("<128I", sector(n))
    assert all(fat[n] == FATSECT for n in difat[:n_fat])
    used: set[int] = set(difat[:n_fat])

    def chain(start: int) -> list[int]:
        out = []
        while start != END:
            assert start not in used and fat[start] not in (FREE, FATSECT)
            used.add(start)
            out.append(start)
            start = fat[start]
        return out

    directory = b"".join(sector(n) for n in chain(first_dir))
    entries = [directory[i : i + 128] for i in range(0, len(directory), 128)]
    root = entries[0]
    assert root[:20].decode("utf-16-le") == "Root Entry" and root[66] == 5
    streams: dict[str, bytes] = {}
    todo = [struct.unpack_from("<I", root, 76)[0]]
    while todo:
        i = todo.pop()
        if i == FREE:
            continue
        e = entries[i]
        name_len, kind = struct.unpack_from("<HB", e, 64)
        left, right, child = struct.unpack_from("<III", e, 68)
        start, size = struct.unpack_from("<IQ", e, 116)
        assert kind == 2 and child == FREE and size >= cutoff
        sectors = chain(start)
        assert len(sectors) == -(-size // 512)
        streams[e[: name_len - 2].decode("utf-16-le")] = b"".join(sector(n) for n in sectors)[:size]
        todo += [left, right]
    return streams


def test_ole2_canaries_are_valid_compound_files() -> None:
    for c in of_format("doc"):
        streams = read_cfb(c.data)
        assert {"WordDocument", "1Table", "\x05SummaryInformation"} <= set(streams), c.name
        word = streams["WordDocument"]
        assert struct.unpack_from("<HH", word, 0) == (0xA5EC, 0x00C1)
        fc_clx, lcb_clx = struct.unpack_from("<II", word, 0x1A2)
        assert streams["1Table"][fc_clx] == 2 and lcb_clx > 0  # the piece table
        assert struct.unpack_from("<H", streams["\x05SummaryInformation"], 0) == (0xFFFE,)
    for c in of_format("xls"):
        book = read_cfb(c.data)["Workbook"]
        records, at, depth = [], 0, 0
        while True:  # the globals substream, then the sheet's, each from BOF to EOF
            kind, length = struct.unpack_from("<HH", book, at)
            assert length <= 8224
            records.append((kind, at, book[at + 4 : at + 4 + length]))
            at += 4 + length
            depth += (kind == 0x0809) - (kind == 0x000A)
            if depth == 0 and sum(k == 0x0809 for k, _, _ in records) == 2:
                break
        kinds = [k for k, _, _ in records]
        assert kinds[0] == 0x0809 and {0x00FC, 0x0085, 0x00FD} <= set(kinds) and depth == 0
        sheet_at = next(struct.unpack_from("<I", body)[0] for k, _, body in records if k == 0x0085)
        assert (0x0809, sheet_at) in {(k, a) for k, a, _ in records[1:]}  # BOUNDSHEET points at the sheet
        assert not book[at:].strip(b"\x00")


def test_mail_text_and_executable_canaries_are_well_formed() -> None:
    for c in of_format("eml"):
        msg = email.message_from_bytes(c.data, policy=email.policy.default)
        assert msg.is_multipart() and msg["Subject"]
        parts = list(msg.iter_attachments())
        assert len(parts) == 1
        attached = parts[0].get_content()
        assert isinstance(attached, bytes)
        if parts[0].get_content_type() == "application/pdf":
            check_pdf(attached)
    for c in of_format("rtf"):
        text = re.sub(rb"\\[\\{}]", b"", c.data)
        assert c.data.startswith(b"{\\rtf1\\ansi\\ansicpg") and text.count(b"{") == text.count(b"}")
    for c in of_format("html"):
        assert c.data.startswith(b"<!DOCTYPE html>") and c.data.rstrip().endswith(b"</html>")
    (pe,) = of_format("pe")
    lfanew = struct.unpack_from("<I", pe.data, 0x3C)[0]
    assert pe.data[:2] == b"MZ" and pe.data[lfanew : lfanew + 6] == b"PE\x00\x00\x64\x86"
    (elf,) = of_format("elf")
    assert elf.data[:4] == b"\x7fELF" and struct.unpack_from("<Q", elf.data, 0x28) == (0,)
    (png,) = of_format("png")
    at = 8
    while at < len(png.data):
        (length,) = struct.unpack_from(">I", png.data, at)
        body = png.data[at + 4 : at + 8 + length]
        assert struct.unpack_from(">I", png.data, at + 8 + length) == (zlib.crc32(body),)
        at += 12 + length
    assert at == len(png.data) and png.data.endswith(b"IEND\xaeB`\x82")


def test_canaries_come_marked_and_ordinary_in_every_size_up_to_5_mb() -> None:
    canaries = corpus()
    assert {c.kind for c in canaries} == {MARKED, ORDINARY}
    assert len({c.name for c in canaries}) == len(canaries)
    for label, target in SIZES.items():
        sized = [c for c in canaries if c.size == label]
        assert sized and all(0.8 * target <= len(c.data) <= 1.25 * target for c in sized), label
    assert max(len(c.data) for c in canaries) <= 1.1 * SIZES["5 MB"]
    for fmt in ("docx", "xlsx", "pptx", "odt", "pdf", "rtf", "doc", "xls", "eml", "txt", "html"):
        assert {c.kind for c in canaries if c.format == fmt} == {MARKED, ORDINARY}, fmt


def test_marked_canaries_carry_the_given_markings_in_each_encoding() -> None:
    markings = ["PROJECT BLUEWHALE", "ДСП", "机密", "VS-NfD", "SECRET DÉFENSE"]
    canaries = corpus(markings)
    marked = [c.data for c in canaries if c.kind == MARKED]
    ordinary = [c.data for c in canaries if c.kind == ORDINARY]
    expected = [(m, codec) for m in markings for codec in ("utf-8", "utf-16-le")]
    expected += [("ДСП", "cp1251"), ("机密", "gb18030"), ("VS-NfD", "cp1252"), ("SECRET DÉFENSE", "cp1252")]
    expected += [("PROJECT BLUEWHALE", "utf-16-be"), ("ДСП", "utf-16-be")]  # PDF Info strings
    for m, codec in expected:
        assert any(m.encode(codec) in d for d in marked), (m, codec)
    assert not any(b"BLUEWHALE" in d or "BLUEWHALE".encode("utf-16-le") in d for d in ordinary)
    assert corpus(markings) == canaries and corpus(["OTHER CODENAME"]) != canaries


# --- canaries run per rule and cannot be switched off ---------------------------------------------------

HUNT = rule("Memo_Hunt", "T-100", '    $a = "TOP SECRET"', "$a")
BENIGN = {
    "benign.yar": EICAR_RULE
    + rule(
        "Rtf_Equation_Exploit",
        "T-900",
        '    $rtf = "{\\\\rtf"\n    $eq = "Equation.3" nocase\n    $obj = "\\\\objupdate"',
        "$rtf at 0 and $eq and $obj and filesize < 2MB",
    )
    + rule(
        "Pdf_JavaScript_OpenAction",
        "T-901",
        '    $js = "/JavaScript"\n    $oa = "/OpenAction"',
        "uint32(0) == 0x46445025 and all of them and filesize < 500KB",
    )
    + rule(
        "Ole_AutoOpen_Shell",
        "T-902",
        '    $a = "AutoOpen"\n    $b = "Shell" ascii wide',
        "uint32be(0) == 0xD0CF11E0 and all of them",
    )
    + rule("Ransom_Note", "T-903", '    $a = "YOUR FILES ARE ENCRYPTED" nocase', "$a and filesize < 64KB")
    + rule("Mimikatz", "T-904", '    $a = "lsadump::secrets" ascii wide', "$a")
    + rule(
        "Pe_GetSecretKey",
        "T-905",
        '    $a = "GetSecretKey"',
        "uint16(0) == 0x5A4D and $a and filesize > 10KB",
    ),
}
BENIGN_IDS = {"OVT-0001", "T-900", "T-901", "T-902", "T-903", "T-904", "T-905"}


def hits(rules: RuleSet) -> list[Finding]:
    changed = {r.id for r in rules.yara} | {h.id for h in rules.hashes}
    findings, ran = check_canaries(rules, changed)
    assert ran == len(corpus())
    assert all(f.check == "canary-hit" for f in findings)
    return findings


def hit_ids(rules: RuleSet) -> set[str]:
    return {f.rule_id for f in hits(rules)}


def test_a_global_filesize_rule_in_another_file_does_not_disable_canaries() -> None:
    for gate in ("filesize > 4KB", "filesize > 8MB", "filesize < 100"):
        tree = {"a.yar": HUNT, "gate.yar": "global " + rule("Size_Gate", "T-101", "", gate), **BENIGN}
        found = hit_ids(ruleset(tree))
        assert "T-100" in found, gate
        assert not found & BENIGN_IDS


@pytest.mark.parametrize(
    "condition",
    [
        "$a and filesize > 6MB",
        "$a and filesize < 1KB",
        "$a and 0x600000 <= filesize",
        "$a and not filesize <= 6MB",
        "$a and (filesize > 10 * 1024 * 1024)",
        "filesize == 12345 and $a",
    ],
)
def test_filesize_bounds_in_the_hunting_rule_are_lifted(condition: str) -> None:
    found = hits(
        ruleset({"a.yar": rule("Bounded_Hunt", "T-110", '    $a = "TOP SECRET"', condition), **BENIGN})
    )
    assert {f.rule_id for f in found} == {"T-110"}
    assert all(
        "its bounds on size, position, the clock or whole-file statistics lifted" in f.message for f in found
    )


def test_a_duplicate_rule_name_in_a_second_file_hides_neither_rule() -> None:
    second = rule("Memo_Hunt", "T-120", '    $a = "NOFORN"', "$a")
    found = hits(ruleset({"a.yar": HUNT, "b.yar": second, **BENIGN}))
    assert {f.rule_id for f in found} == {"T-100", "T-120"}
    marked = [f for f in found if "the marked " in f.message]
    assert marked and all(re.search(r"canary \S+ \((small|64 KB|1 MB|5 MB)", f.message) for f in marked)


def test_rules_named_in_the_condition_come_along_with_their_bounds_lifted() -> None:
    helper = "private " + rule("Big_Enough", "T-130", "", "filesize > 6MB")
    gate = "global " + rule("Gate", "T-131", "", "filesize > 7MB")
    hunt = rule("Named_Hunt", "T-132", '    $a = "NOFORN"', "Big_Enough and Gate and $a")
    found = hits(ruleset({"a.yar": helper + gate + hunt, **BENIGN}))
    assert "T-132" in {f.rule_id for f in found}
    assert not {f.rule_id for f in found} & BENIGN_IDS


def test_a_rule_that_does_not_compile_hides_no_other_rule() -> None:
    broken = rule("Broken", "T-140", '    $a = "x"', "$a and no_such_identifier")
    found = hit_ids(ruleset({"a.yar": broken + HUNT, **BENIGN}))
    assert found == {"T-100"}


def test_hash_signatures_matching_a_canary_are_found() -> None:
    target = next(c for c in corpus() if c.size == "64 KB" and c.format == "pdf")
    line = f"{hashlib.md5(target.data).hexdigest()}:{len(target.data)}:Canary.Pdf.Hash"
    found = hits(ruleset({"h.hdb": hdb([line]), **BENIGN}))
    assert [(f.rule_id, f.evidence) for f in found] == [("Canary.Pdf.Hash", target.name)]


@pytest.mark.parametrize(
    ("condition", "lifted"),
    [
        ("filesize > 4KB", "true"),
        ("4KB < filesize and $a", "true and $a"),
        ("not filesize < 0x100 and $a", "not false and $a"),
        ("not (filesize > 1MB or $a)", "not (false or $a)"),
        ("(filesize) >= 10 * 1024 and $a", "true and $a"),
        ("$a and filesize \\ 1024 > 4 // size", "$a and true // size"),
        ("uint32(filesize - 4) == 0x1234 and filesize < 10MB", "uint32(filesize - 4) == 0x1234 and true"),
        ("pe.number_of_sections > 3 and filesize < 1MB", "pe.number_of_sections > 3 and true"),
        (
            "for any i in (1..#a) : (@a[i] < filesize - 10) and filesize > 1KB",
            "for any i in (1..#a) : (@a[i] < filesize - 10) and true",
        ),
        ('$a and "filesize > 4" == "x" and filesize > 4', '$a and "filesize > 4" == "x" and true'),
        ("$a and /* filesize > 4 */ filesize > 4", "$a and /* filesize > 4 */ true"),
    ],
)
def test_lift_filesize(condition: str, lifted: str) -> None:
    assert lift_filesize(condition) == lifted


def test_a_private_helper_runs_inside_the_public_rules_that_use_it() -> None:
    # A private helper reports no match of its own: a format helper matching every PDF is not a finding...
    pdf_helper = "private " + rule("Is_Pdf", "T-150", '    $p = "%PDF-"', "$p at 0")
    exploit = rule(
        "Pdf_Js", "T-151", '    $js = "/JavaScript"\n    $oa = "/OpenAction"', "Is_Pdf and $js and $oa"
    )
    assert not hit_ids(ruleset({"a.yar": pdf_helper + exploit, **BENIGN}))
    # ...but a changed private rule that hunts is caught through the unchanged public rule that names it.
    hunting_helper = "private " + rule("Is_Pdf", "T-150", '    $p = "TOP SECRET"', "$p")
    public = rule("Pdf_Any", "T-152", "", "Is_Pdf")
    tree = ruleset({"a.yar": hunting_helper + public})
    findings, _ = check_canaries(tree, {"T-150"})
    assert {f.rule_id for f in findings} == {"T-152"}


def test_a_rule_that_reads_nothing_of_the_file_is_a_constant_not_a_hit() -> None:
    for gate in ("filesize < 10MB", "true", "filesize > 0 and true"):
        tree = ruleset({"gate.yar": "global " + rule("Size_Gate", "T-160", "", gate)})
        assert not hit_ids(tree), gate


def test_a_hit_on_an_ordinary_file_that_is_no_document_is_advisory() -> None:
    any_pe = rule("Any_Dos_Stub", "T-170", '    $a = "cannot be run in DOS mode"', "$a")
    findings = hits(ruleset({"a.yar": any_pe}))
    assert findings and {f.severity for f in findings} == {"advisory"}
    assert all("ordinary" in f.message for f in findings)
    hunting = hits(ruleset({"a.yar": HUNT}))
    assert hunting and all(f.blocking for f in hunting)


@pytest.mark.parametrize(
    "gate",
    [
        "time.now() > 1893456000",
        "time.now() % 1000 == 7",
        "math.entropy(0, filesize) > 7.0",
        "not (math.mean(0, filesize) < 200)",
    ],
)
def test_clock_and_whole_file_statistics_gates_are_lifted(gate: str) -> None:
    imports = 'import "time"\nimport "math"\n'
    hunt = rule("Gated_Hunt", "T-180", '    $a = "TOP SECRET"', f"{gate} and $a", imports=imports)
    assert hit_ids(ruleset({"a.yar": hunt, **BENIGN})) == {"T-180"}


@pytest.mark.parametrize(
    "gate",
    [
        "defined uint8(8000000)",
        "uint32(6000000) != 0x12345678",
        "$a at 6000000",
        "#a > 2000",
        "for any i in (1..#a) : (@a[i] > 5500000)",
        "$a in (6MB..filesize)",
    ],
)
def test_gates_on_where_in_a_big_file_something_lies_are_lifted(gate: str) -> None:
    hunt = rule("Far_Hunt", "T-190", '    $a = "TOP SECRET"', f"$a and {gate}")
    assert hit_ids(ruleset({"a.yar": hunt, **BENIGN})) == {"T-190"}
