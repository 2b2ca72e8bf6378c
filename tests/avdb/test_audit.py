"""The rule auditor: every check has a rule it must flag and a benign look-alike it must not."""

from __future__ import annotations

import base64

import pytest

from overt.avdb.audit import HUNTING_CHECKS, audit
from overt.avdb.findings import ADVISORY, BLOCKING
from tests.avdb.samples import EICAR_RULE, rule, ruleset


def checks_of(text: str, **kw: object) -> set[str]:
    report = audit(ruleset({"r.yar": text}), **kw)  # type: ignore[arg-type]
    return {f.check for f in report.findings}


def xor_hex(text: str, key: int, encoding: str = "latin-1") -> str:
    return "{ " + " ".join(f"{b ^ key:02X}" for b in text.encode(encoding)) + " }"


FLAGGED_MARKINGS = [
    ('$a = "TOP SECRET"', "ascii"),
    ('$a = "top secret" nocase', "nocase"),
    ('$a = "TS/SCI" wide', "wide"),
    ('$a = "NOFORN" xor', "xor"),
    ('$a = "SECRET//REL TO" base64', "base64"),
    ('$a = "FOUO" ascii wide', "ascii wide"),
    ('$a = "Confidential"', "mixed case"),
    (f'$a = "{base64.b64encode(b"TOP SECRET").decode()}"', "base64 written in the rule"),
    ("$a = { " + " ".join(f"{b:02X}" for b in b"NOFORN") + " }", "hex ascii"),
    ("$a = { " + " ".join(f"{b:02X}" for b in "TOP SECRET".encode("utf-16-le")) + " }", "hex utf-16"),
    (f"$a = {xor_hex('CONFIDENTIAL', 0x5A)}", "hex xored"),
    ("$a = { " + " ".join(f"{b:02X}" for b in "СОВЕРШЕННО СЕКРЕТНО".encode("cp1251")) + " }", "hex cp1251"),
    ('$a = "СЕКРЕТНО"', "russian utf-8"),
    ('$a = "Streng Geheim"', "german"),
    ('$a = "VS-NUR FÜR DEN DIENSTGEBRAUCH"', "german dienstgebrauch"),
    ("$a = /TOP\\s?SECRET/", "regex literal"),
]


@pytest.mark.parametrize(("pattern", "why"), FLAGGED_MARKINGS, ids=[w for _, w in FLAGGED_MARKINGS])
def test_markings_are_flagged_in_every_encoding(pattern, why):
    text = rule("Doc_Hunt", "OVT-0100", f"    {pattern}", "$a")
    assert "sensitive-marking" in checks_of(text), why


@pytest.mark.parametrize(
    "pattern",
    [
        '$a = "SECRET_KEY_BASE"',
        '$a = "secretary"',
        '$a = "TOPSECRETKEY"',
        '$a = "confide"',
        '$a = "секретный ключ"',
        "$a = { 4D 5A 90 00 03 00 00 00 }",
        '$a = "forn"',
    ],
)
def test_benign_lookalikes_are_not_marking_findings(pattern):
    text = rule("Malware_Strings", "OVT-0101", f"    {pattern}", "$a")
    assert "sensitive-marking" not in checks_of(text)


def test_configurable_word_list():
    text = rule("Code_Name", "OVT-0102", '    $a = "operation nightfall"', "$a")
    assert "sensitive-marking" not in checks_of(text)
    assert "sensitive-marking" in checks_of(text, markings=("OPERATION NIGHTFALL",))
    assert audit(ruleset({"r.yar": text}), markings=("OPERATION NIGHTFALL",)).markings == "word list"


def test_document_only_rules():
    hunting = rule(
        "Pdf_Budget_Memo",
        "OVT-0200",
        '    $pdf = "%PDF"\n    $w1 = "annual budget"\n    $w2 = "defence ministry"',
        "$pdf at 0 and all of ($w*)",
    )
    ole = rule("Ole_Minutes", "OVT-0201", '    $w = "board minutes"', "uint32(0) == 0xE011CFD0 and $w")
    exploit = rule(
        "Pdf_JS_Dropper",
        "OVT-0202",
        '    $pdf = "%PDF"\n    $js = "/JavaScript"\n    $oa = "/OpenAction"',
        "$pdf at 0 and $js and $oa",
    )
    rtf_exploit = rule(
        "Rtf_Equation",
        "OVT-0203",
        '    $r = "{\\\\rtf"\n    $o = "objdata"\n    $e = "Equation.3"',
        "all of them",
    )
    assert "document-only" in checks_of(hunting)
    assert "document-only" in checks_of(ole)
    assert "document-only" not in checks_of(exploit)
    assert "document-only" not in checks_of(rtf_exploit)


def test_targeting_externals():
    targeted = rule(
        "Host_Specific", "OVT-0300", '    $a = "payload"', '$a and filename == "ministry-report.docx"'
    )
    targeted_path = rule(
        "Path_Specific", "OVT-0301", '    $a = "payload"', '$a and filepath contains "/home/alice"'
    )
    benign = rule("Size_Bound", "OVT-0302", '    $a = "payload"', "$a and filesize < 2MB")
    assert "targeting" in checks_of(targeted)
    assert "targeting" in checks_of(targeted_path)
    assert "targeting" not in checks_of(benign)


def test_collection_names_and_metadata():
    by_meta = rule("Quiet_Rule", "OVT-0400", '    $a = "payload"', "$a", action="upload")
    by_name = rule("Collect_Word_Files", "OVT-0401", '    $a = "payload"', "$a")
    by_purpose = rule(
        "Ops_Rule", "OVT-0402", '    $a = "payload"', "$a", purpose="collect and submit matches"
    )
    benign = rule(
        "Win_Stealer_Uploader",
        "OVT-0403",
        '    $a = "payload"',
        "$a",
        description="Detects a stealer that uploads browser data",
    )
    assert "collection" in checks_of(by_meta)
    assert "collection" in checks_of(by_name)
    assert "collection" in checks_of(by_purpose)
    assert "collection" not in checks_of(benign)


def test_includes_unknown_modules_missing_metadata_and_performance():
    assert "include" in checks_of('include "other.yar"\n' + EICAR_RULE)
    assert "unknown-module" in checks_of(rule("M", "OVT-0500", "", "true", imports='import "nosuchmodule"\n'))
    assert "unknown-module" not in checks_of(rule("Pe", "OVT-0501", "", "pe.is_pe", imports='import "pe"\n'))
    missing = 'rule No_Meta {\n  meta:\n    id = "OVT-0502"\n  strings:\n    $a = "payload"\n  condition:\n    $a\n}\n'
    assert "missing-metadata" in checks_of(missing)
    assert "missing-metadata" not in checks_of(EICAR_RULE)
    slow = rule("Slow", "OVT-0503", "    $a = /a.*/", "$a")
    assert any(c.startswith("notice:") for c in checks_of(slow))
    assert not any(c.startswith("notice:") for c in checks_of(EICAR_RULE))


def test_notices_are_advisory_unless_the_tree_says_they_block():
    slow = rule("Hex_As_Text", "OVT-0503", "    $a = { 71 78 7A 6B 71 }", "$a")
    advisory = audit(ruleset({"r.yar": slow}))
    assert {f.severity for f in advisory.findings if f.check.startswith("notice:")} == {ADVISORY}
    assert not advisory.blocking
    blocking = audit(ruleset({"r.yar": slow, "overt-audit.toml": "[notices]\nblocking = true\n"}))
    assert {f.severity for f in blocking.findings if f.check.startswith("notice:")} == {BLOCKING}
    assert blocking.blocking and blocking.to_predicate()["blocking"] == len(blocking.blocking)


def test_every_document_hunting_check_and_source_problem_blocks():
    text = rule("Doc_Hunt", "OVT-0100", '    $a = "TOP SECRET"', "$a") + 'include "x.yar"\n'
    report = audit(ruleset({"r.yar": text}))
    hunting = [f for f in report.findings if f.check in HUNTING_CHECKS | {"include"}]
    assert {f.check for f in hunting} >= {"sensitive-marking", "include"}
    assert all(f.severity == BLOCKING for f in hunting)


def test_canaries_catch_rules_that_hit_documents_or_ordinary_files():
    hits_memo = rule("Memo_Banner", "OVT-0600", '    $a = "SI//NOFORN"', "$a")
    hits_exe = rule("Any_Dos_Stub", "OVT-0601", '    $a = "cannot be run in DOS mode"', "$a")
    canary_checks = [
        f for f in audit(ruleset({"r.yar": hits_memo + hits_exe})).findings if f.check == "canary-hit"
    ]
    assert {f.rule_id for f in canary_checks} == {"OVT-0600", "OVT-0601"}
    assert any("marked" in f.message for f in canary_checks if f.rule_id == "OVT-0600")
    assert "canary-hit" not in checks_of(EICAR_RULE)


def test_canaries_only_run_on_new_or_changed_rules():
    old = ruleset({"r.yar": rule("Any_Dos_Stub", "OVT-0601", '    $a = "cannot be run in DOS mode"', "$a")})
    report = audit(old, previous=old)
    assert report.new_or_changed == 0 and not [f for f in report.findings if f.check == "canary-hit"]


def test_finding_ids_are_stable_and_distinct():
    text = rule("Doc_Hunt", "OVT-0100", '    $a = "TOP SECRET"\n    $b = "NOFORN"', "any of them")
    a, b = audit(ruleset({"r.yar": text})), audit(ruleset({"r.yar": text}))
    assert [f.id for f in a.findings] == [f.id for f in b.findings]
    assert len({f.id for f in a.findings}) == len(a.findings)


def test_a_marking_in_a_rule_that_matches_only_executables_is_advisory():
    note = '    $a = "This message is for your eyes only" ascii wide nocase\n    $b = "bitcoin" nocase'
    in_pe = audit(
        ruleset({"r.yar": rule("Ransom_Pe", "OVT-0700", note, "uint16(0) == 0x5A4D and all of them")})
    )
    marking = [f for f in in_pe.findings if f.check == "sensitive-marking"]
    assert marking and all(f.severity == ADVISORY and "only executables" in f.message for f in marking)
    anywhere = audit(ruleset({"r.yar": rule("Ransom_Any", "OVT-0701", note, "all of them")}))
    assert any(f.check == "sensitive-marking" and f.severity == BLOCKING for f in anywhere.findings)
