"""The marking checks on rule patterns: disguised markings are found, malware rules that look alike are not."""

from __future__ import annotations

import base64

import pytest

from overt.avdb.markings import Markings, load_markings, parse_markings
from overt.avdb.patterns import check_patterns, differences, probe
from overt.avdb.rules import YaraRule
from tests.avdb.samples import rule, ruleset


@pytest.fixture(scope="module")
def markings() -> Markings:
    return load_markings()


def hexed(data: bytes, key: int = 0) -> str:
    return " ".join(f"{b ^ key:02X}" for b in data)


def b64_core(text: str, offset: int) -> str:
    """The base64 text of ``text`` written at ``offset`` that the marking alone decides (no modifier used)."""
    data = text.encode()
    b = base64.b64encode(b"\x00" * offset + data + b"\x00\x00").decode()
    return b[-(-8 * offset // 6) : (8 * (offset + len(data))) // 6]


def rules_of(cases: dict[str, tuple[str, str]]) -> list[YaraRule]:
    files = {f"r/{n}.yar": rule(n, f"T-{n}", s, c) for n, (s, c) in cases.items()}
    rs = ruleset(files)
    assert len(rs.yara) == len(cases)
    return list(rs.yara)


def flagged(cases: dict[str, tuple[str, str]], markings: Markings) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {n: [] for n in cases}
    for f in check_patterns(rules_of(cases), markings):
        out[f.rule].append(f"{f.check} {f.evidence}")
    return out


ANY = "any of them"
DISGUISED = {
    "regex_classes": (r"    $a = /T[O0]P\s+S[E3]CRET/", ANY),
    "regex_classes_wide": (r"    $a = /S[E3]CR[E3]T\s?D[E\xC9]F[E3]NS[E3]/ wide", ANY),
    "hex_jump": ("    $a = { 54 4F 50 [1-2] 53 45 43 52 45 54 }", ANY),
    "hex_wildcards": ("    $a = { 54 4F 50 20 53 ?? 43 52 4? 54 }", ANY),
    "hex_alternatives": ("    $a = { 4E 4F ( 46 4F 52 4E | 20 46 4F 52 45 49 47 4E ) }", ANY),
    "hex_comments": ("    $a = { 54 4F 50 /* T O P */ 20 53 45 43 // SEC\n 52 45 54 }", ANY),
    "base64_offset_0": (f'    $a = "{b64_core("TOP SECRET", 0)}"', ANY),
    "base64_offset_1": (f'    $a = "{b64_core("TOP SECRET", 1)}"', ANY),
    "base64_offset_2": (f'    $a = "{b64_core("NOFORN", 2)}" wide', ANY),
    "base64_modifier": ('    $a = "EYES ONLY" base64wide', ANY),
    "split_russian": ('    $a = "ДЛЯ СЛУЖЕБНОГО"\n    $b = "ПОЛЬЗОВАНИЯ"', "$a and $b"),
    "split_german_wide": ('    $a = "VS-NUR FUER DEN " wide\n    $b = "DIENSTGEBRAUCH" wide', "all of them"),
    "dsp_cp1251_hex": (f"    $a = {{ {hexed('ДСП'.encode('cp1251'))} }}", ANY),
    "russian_gap": (
        f"    $a = {{ {hexed('ДЛЯ'.encode('cp1251'))} [1-3] {hexed('СЛУЖЕБНОГО ПОЛЬЗОВАНИЯ'.encode('cp1251'))} }}",
        ANY,
    ),
    "russian_regex_gap": (r"    $a = /ДЛЯ\s{1,4}СЛУЖЕБНОГО\s+ПОЛЬЗОВАНИЯ/", ANY),
    "vs_nfd": ('    $a = "VS-NfD"', ANY),
    "german_fuer": ('    $a = "VS-NUR FUER DEN DIENSTGEBRAUCH" wide', ANY),
    "noforn_spelled_out": ('    $a = "NOT RELEASABLE TO FOREIGN NATIONALS" nocase', ANY),
    "eyes_only": ('    $a = "EYES ONLY" wide', ANY),
    "orcon_spelled_out": ('    $a = "ORIGINATOR CONTROLLED" ascii wide', ANY),
    "ts_sci": ('    $a = "TS//SCI"', ANY),
    "s_nf": ('    $a = "S//NF"', ANY),
    "classified": ('    $a = "CLASSIFIED"', ANY),
    "xor_modifier": ('    $a = "TOP SECRET" xor(1-255)', ANY),
    "xor_hex": (f"    $a = {{ {hexed(b'STRENG GEHEIM - Projekt', 0x5A)} }}", ANY),
    "nocase": ('    $a = "top secret" nocase', ANY),
    "nocase_wide": ('    $a = "streng geheim" nocase wide', ANY),
    "marking_plus_text": ('    $a = "TOP SECRET - Operation X"', ANY),
    "hex_of_text": (f"    $a = {{ {hexed(b'CONFIDENTIAL//NOFORN report')} }}", ANY),
    "base64_inside_text": (
        f'    $a = "{base64.b64encode(b"Memo: SECRET DEFENSE, do not copy").decode()}"',
        ANY,
    ),
    "hex_inside_text": (f'    $a = "{"СЕКРЕТНО".encode().hex()}"', ANY),
    "chinese_wide": ('    $a = "绝密" wide', ANY),
    "chinese_gb18030": (f"    $a = {{ {hexed('机密文件'.encode('gb18030'))} }}", ANY),
    "private_pattern": ('    $a = "COSMIC TOP SECRET" private\n    $b = "MZ"', ANY),
}


@pytest.mark.parametrize("name", sorted(DISGUISED))
def test_every_disguise_is_flagged(markings: Markings, name: str) -> None:
    assert flagged({name: DISGUISED[name]}, markings)[name]


@pytest.mark.parametrize(
    ("strings", "condition", "marking", "how"),
    [
        ('    $a = "TOP SECRET" wide', ANY, "TOP SECRET", "UTF-16LE"),
        (f"    $a = {{ {hexed('СЕКРЕТНО'.encode('cp1251'))} }}", ANY, "СЕКРЕТНО", "CP1251"),
        (f'    $a = "{b64_core("TOP SECRET", 1)}"', ANY, "TOP SECRET", "base64 of ASCII at offset 1"),
        (f"    $a = {{ {hexed(b'TOP SECRET memo', 0x45)} }}", ANY, "TOP SECRET", "XOR-ed with key 0x45"),
    ],
)
def test_finding_names_pattern_marking_and_encoding(
    markings: Markings, strings: str, condition: str, marking: str, how: str
) -> None:
    (f,) = check_patterns(rules_of({"one": (strings, condition)}), markings)
    assert f.check == "sensitive-marking" and f.evidence == f"$a:{marking}"
    assert f"pattern $a matches the marking {marking!r}" in f.message and how in f.message
    assert f.severity == "blocking"


def test_split_marking_names_both_patterns(markings: Markings) -> None:
    (f,) = check_patterns(rules_of({"s": DISGUISED["split_russian"]}), markings)
    assert f.check == "split-marking" and f.evidence == "$a+$b:ДЛЯ СЛУЖЕБНОГО ПОЛЬЗОВАНИЯ"


BENIGN = {
    "ransom_note": (
        '    $a = "YOUR FILES ARE ENCRYPTED" wide ascii\n    $b = "bitcoin" nocase\n'
        '    $c = "HOW_TO_DECRYPT.txt"\n    $d = "Your personal ID" nocase',
        "2 of them",
    ),
    "ole_autoopen": (
        '    $ole = { D0 CF 11 E0 A1 B1 1A E1 }\n    $a = "AutoOpen" nocase\n    $b = "Shell" nocase\n'
        '    $c = "WScript.Shell"',
        "$ole at 0 and 2 of ($a, $b, $c)",
    ),
    "pdf_javascript": (
        '    $pdf = "%PDF"\n    $js = "/JavaScript"\n    $oa = "/OpenAction"\n    $u = /\\/JS\\s*\\(/',
        "$pdf at 0 and $js and $oa",
    ),
    "get_secret_key": (
        '    $a = "GetSecretKey" ascii wide\n    $b = "SecretKeySpec"\n    $c = "ClientSecret" nocase\n'
        '    $d = "client_secret" nocase',
        "uint16(0) == 0x5A4D and 2 of them",
    ),
    "powershell_base64": (
        '    $a = "powershell" nocase\n    $b = "-EncodedCommand" nocase\n'
        '    $c = "SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA"\n'
        '    $d = "DownloadString" base64\n    $e = "FromBase64String"',
        "2 of them",
    ),
    "mimikatz": (
        '    $a = "lsadump::secrets" wide ascii nocase\n    $b = "sekurlsa::logonpasswords" wide\n'
        '    $c = "kerberos::golden" wide\n    $d = /lsadump::(secrets|sam|cache)/ nocase',
        "2 of them",
    ),
    "german_ransom_note": (
        '    $a = "Alle Ihre Dateien wurden verschlüsselt" nocase\n'
        '    $b = "geheimen Schlüssel" nocase wide\n    $c = "den geheimen Code" nocase\n'
        '    $d = "Geheimnis"',
        "2 of them",
    ),
    "remote_template": (
        '    $a = "attachedTemplate" nocase\n    $b = /Target="https?:\\/\\/[^"]+\\.dotm"/\n'
        '    $c = "TargetMode=\\"External\\""',
        "all of them",
    ),
    "docusign_phishing": (
        '    $pdf = { 25 50 44 46 }\n    $a = "DocuSign" nocase\n    $b = "Review Document" nocase\n'
        '    $c = "/URI"\n    $d = "Please review and sign your document"',
        "$pdf at 0 and 3 of them",
    ),
    "confidential_client": (
        '    $a = "ConfidentialClientApplicationBuilder" wide\n    $b = "Microsoft.Identity.Client"',
        ANY,
    ),
    "generic_regexes": (
        "    $a = /[A-Z]{3}\\s[A-Z]{6}/\n    $b = /[A-Za-z0-9+\\/]{12,}={0,2}/\n    $c = /\\w{4,12}\\.exe/",
        ANY,
    ),
    "generic_hex": (
        "    $a = { ?? ?? ?? ?? ?? ?? ?? ?? ?? ?? ?? ?? ?? ?? ?? ?? ?? ?? ?? ?? ?? 01 }\n"
        "    $b = { 00 ?? 00 ?? 00 ?? 00 }",
        ANY,
    ),
    "secret_in_words": (
        '    $a = "[ -s secret ]" fullword nocase wide ascii\n    $b = "TopSecretTool"\n'
        '    $c = "SECRETSDUMP"\n    $d = "unclassifiedError"',
        ANY,
    ),
}


@pytest.mark.parametrize("name", sorted(BENIGN))
def test_benign_look_alikes_stay_quiet(markings: Markings, name: str) -> None:
    assert flagged({name: BENIGN[name]}, markings) == {name: []}


def test_word_boundaries_hold_in_every_layer(markings: Markings) -> None:
    # The same words the benign rules hold, hidden the ways a hunting rule would hide a marking: still quiet.
    quiet = {
        "hex_getsecretkey": (f"    $a = {{ {hexed(b'GetSecretKey')} }}", ANY),
        "xor_lsadump": (f"    $a = {{ {hexed(b'lsadump::SECRETS', 0x33)} }}", ANY),
        "b64_geheimen": (f'    $a = "{base64.b64encode(b"die GEHEIMEN Daten").decode()}"', ANY),
        "regex_confidential": (r"    $a = /CONFIDENTIALClient[A-Za-z]+/", ANY),
    }
    assert flagged(quiet, markings) == {n: [] for n in quiet}


def test_a_bad_probe_does_not_hide_the_others(markings: Markings) -> None:
    cases = {f"filler_{i}": (f'    $a = "filler-{i}-payload"', ANY) for i in range(7)}
    cases["bad"] = ('    $a = "abc" xor(300)', ANY)  # lexes, but yara-x refuses it
    cases["hunter"] = ("    $a = { 54 4F 50 [1-2] 53 45 43 52 45 54 }", ANY)
    rules = rules_of(cases)
    result = probe(rules, markings)
    assert result.unprobed == ("T-bad",)
    assert [h.rule.name for h in result.hits] == ["hunter"]


def test_a_customers_codename_is_found(markings: Markings) -> None:
    mine = parse_markings(b"# codenames\nBLUE HARVEST\n", origin="codenames.txt")
    cases = {
        "planted": (r"    $a = /BLUE[\s_-]?HARV[E3]ST/ nocase wide", ANY),
        "vendor_sees_nothing": ('    $a = "harvester.dll"', ANY),
    }
    assert flagged(cases, mine) == {
        "planted": ["sensitive-marking $a:BLUE HARVEST"],
        "vendor_sees_nothing": [],
    }
    assert flagged(cases, markings)["planted"] == []  # the vendor's list does not know the codename


def test_differences_are_xor_invariant() -> None:
    data = b"TOP SECRET"
    assert all(differences(bytes(b ^ k for b in data)) == differences(data) for k in range(256))


@pytest.mark.parametrize(
    ("strings", "marking"),
    [
        ('    $a = "TOP SE"\n    $b = "CRET//"', "TOP SECRET"),  # a piece carries text beyond the marking
        ('    $a = "NOF"\n    $b = "ORN//X1"', "NOFORN"),
        ('    $a = { 53 54 52 45 4E 47 20 }\n    $b = "GEHEIM Vermerk"', "STRENG GEHEIM"),
    ],
)
def test_split_pieces_with_more_text_than_the_marking(markings: Markings, strings: str, marking: str) -> None:
    case = (strings, "for any i in (1..#a) : ( $b at @a[i] + !a[i] )")
    found = [f for f in check_patterns(rules_of({"s": case}), markings) if f.check == "split-marking"]
    assert any(f.evidence.endswith(f":{marking}") for f in found), found


def test_unrelated_pieces_make_no_split_marking(markings: Markings) -> None:
    case = ('    $a = "vssadmin delete"\n    $b = "shadows /all /quiet"', "all of them")
    assert not check_patterns(rules_of({"s": case}), markings)


@pytest.mark.parametrize(
    ("pattern", "marking"),
    [
        ('$a = "OP SECRE"', "TOP SECRET"),
        ('$a = "ДЛЯ СЛУЖЕБНОГО ПОЛЬЗОВАН"', "ДЛЯ СЛУЖЕБНОГО ПОЛЬЗОВАНИЯ"),
        ('$a = "ONFIDENTIA" nocase', "CONFIDENTIAL"),
        ("$a = { 56 53 2D 56 45 52 54 52 41 55 }", "VS-VERTRAULICH"),
    ],
)
def test_a_truncated_marking_is_still_the_marking(markings: Markings, pattern: str, marking: str) -> None:
    found = check_patterns(rules_of({"t": (f"    {pattern}", "$a")}), markings)
    assert any(f.evidence == f"$a:{marking}" and "most of it" in f.message for f in found), found


@pytest.mark.parametrize(
    "pattern", ['$a = "confide"', '$a = "secretary"', '$a = "Classic"', '$a = "GEHEIMEN"']
)
def test_a_short_piece_of_a_marking_is_not(markings: Markings, pattern: str) -> None:
    assert not check_patterns(rules_of({"t": (f"    {pattern}", "$a")}), markings)


CONDITION_SPELLS = {
    "uint32be": "for any i in (0..filesize) : (uint32be(i) == 0x544F5020 and uint32be(i + 4) == 0x53454352 "
    "and uint16be(i + 8) == 0x4554)",
    "uint32 little-endian": "for any i in (0..filesize) : (uint32(i) == 0x20504F54 and uint32(i + 4) == "
    "0x52434553 and uint16(i + 8) == 0x5445)",
    "uint8 decimals": "for any i in (0..filesize) : (uint8(i) == 78 and uint8(i + 1) == 79 and uint8(i + 2) == 70 "
    "and uint8(i + 3) == 79 and uint8(i + 4) == 82 and uint8(i + 5) == 78)",
}


@pytest.mark.parametrize("condition", CONDITION_SPELLS.values(), ids=CONDITION_SPELLS.keys())
def test_a_condition_that_spells_a_marking_in_integers(markings: Markings, condition: str) -> None:
    found = check_patterns(rules_of({"c": ("", condition)}), markings)
    assert [f.evidence for f in found] in (["condition:TOP SECRET"], ["condition:NOFORN"]), found


def test_format_magic_in_a_condition_is_no_marking(markings: Markings) -> None:
    case = ("", "uint32(0) == 0x46445025 and uint32be(4) == 0x2D312E34 and uint16(0) == 0x5A4D")
    assert not check_patterns(rules_of({"c": case}), markings)


def test_one_whole_word_of_a_longer_marking_is_not_a_truncated_marking(markings: Markings) -> None:
    # "secret" is most of "Trèssecret" (TRÈS SECRET DÉFENSE without its gaps), but it is one ordinary word
    case = (
        '    $a = "Runtime.getRuntime().exec(request.getParameter(" ascii\n    $c = "secret" ascii',
        "$a and $c",
    )
    assert not check_patterns(rules_of({"jsp": case}), markings)


def test_a_marking_the_condition_only_excludes_is_no_hunt(markings: Markings) -> None:
    strings = '    $a = "GetSecretKey" ascii\n    $b = "Confidential" ascii'
    assert not check_patterns(rules_of({"x": (strings, "$a and not $b")}), markings)
    assert check_patterns(rules_of({"y": (strings, "$a and $b")}), markings)
    assert check_patterns(rules_of({"z": (strings, "$a and not $b or $b at 0")}), markings)
    assert check_patterns(rules_of({"w": (strings, "$a and not not $b")}), markings)


MAIL_AND_WEB = {
    "lower-case phrase": ('    $a = "top secret"', "TOP SECRET"),
    "lower-case Russian": ('    $a = "совершенно секретно"', "СОВЕРШЕННО СЕКРЕТНО"),
    "quoted-printable": ('    $a = "=D0=A1=D0=95=D0=9A=D0=A0=D0=95=D0=A2=D0=9D=D0=9E"', "СЕКРЕТНО"),
    "HTML decimal": ('    $a = "&#1057;&#1045;&#1050;&#1056;&#1045;&#1058;&#1053;&#1054;"', "СЕКРЕТНО"),
    "HTML hex": ('    $a = "&#x421;&#x415;&#x41a;&#x420;&#x415;&#x422;&#x41d;&#x41e;" nocase', "СЕКРЕТНО"),
    "business variant": ('    $a = "Strictly Confidential"', "CONFIDENTIAL"),
}


@pytest.mark.parametrize(("strings", "marking"), MAIL_AND_WEB.values(), ids=MAIL_AND_WEB.keys())
def test_markings_as_mail_and_web_pages_carry_them(markings: Markings, strings: str, marking: str) -> None:
    found = check_patterns(rules_of({"m": (strings, "$a")}), markings)
    assert any(f.evidence == f"$a:{marking}" for f in found), found


@pytest.mark.parametrize(
    "strings",
    [
        '    $a = "あなたのファイルは暗号化されました"\n    $b = "秘密鍵"',  # Japanese: "private key"
        '    $a = "YOUR FILES ARE ENCRYPTED"\n    $b = "YOUR SECRET KEY:"',
        '    $a = "内部错误" wide',  # Chinese: "internal error"
    ],
)
def test_ordinary_words_in_prose_are_not_markings(markings: Markings, strings: str) -> None:
    assert not check_patterns(rules_of({"p": (strings, "all of them")}), markings)


TYPESET = {
    "letter-spaced": ('    $a = "S E C R E T"', "SECRET"),
    "ISO-8859-5": ("    $a = { C1 B5 BA C0 B5 C2 BD BE }", "СЕКРЕТНО"),
    "decomposed accent": (
        '    $a = "VS-NUR FU\\xcc\\x88R DEN DIENSTGEBRAUCH" nocase',
        "VS-NUR FÜR DEN DIENSTGEBRAUCH",
    ),
    "full-width": ('    $a = "ＳＥＣＲＥＴ"', "SECRET"),
}


@pytest.mark.parametrize(("strings", "marking"), TYPESET.values(), ids=TYPESET.keys())
def test_markings_as_typography_sets_them(markings: Markings, strings: str, marking: str) -> None:
    found = check_patterns(rules_of({"t": (strings, "$a")}), markings)
    assert any(f.evidence == f"$a:{marking}" for f in found), found


def test_other_letter_spaced_and_full_width_words_are_not_markings(markings: Markings) -> None:
    assert not check_patterns(
        rules_of({"t": ('    $a = "S E T U P"\n    $b = "Ｈｅｌｌｏ"', "any of them")}), markings
    )
