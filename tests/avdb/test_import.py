"""``overt avdb import``: a third-party collection becomes a rule tree that loads strictly, each rule verbatim but
for the overt metadata added to its meta section, with what could not come along listed and why."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from overt.avdb.importer import import_tree
from overt.avdb.rules import load_rules
from overt.errors import FormatError, UsageError
from overt.source.escrow import read_directory

# Metadata under the collection's own names (uuid, last_modified), some missing: the mapping has work to do.
MAPPED = """import "pe"

rule Mapped_One : tag
{
    meta:
        author = "Jane Analyst"
        uuid = "7f0c2a34-0000-4000-8000-000000000001"
        last_modified = "2021-03-04"
        family = "dropper"
    strings:
        $a = "mapped-one-marker"
    condition:
        $a and pe.number_of_sections > 0
}

rule Own_Id { meta: id = "C-42" version = 3 condition: false }
"""
# No meta section at all, Windows line endings, a private rule used by the next one.
BARE_CRLF = (
    "private rule Helper\r\n{\r\n  condition:\r\n    uint16(0) == 0x5A4D\r\n}\r\n\r\n"
    'rule Uses_Helper\r\n{\r\n  strings:\r\n    $b = "bare-marker"\r\n  condition:\r\n    Helper and $b\r\n}\r\n'
)
INDEX = 'include "mapped.yar"\ninclude "bare.yara"\n'
ANDROID = """import "androguard"
import "pe"

rule Needs_Android { condition: androguard.package_name("com.evil") }
rule Plain_Pe { condition: pe.is_dll() }
"""
BROKEN = """rule Broken { condition: no_such_thing }
rule Fine { strings: $c = "fine-marker" condition: $c }
"""
DUPLICATE = 'rule Mapped_One { strings: $d = "other" condition: $d }\nrule Unique_Z { condition: true }\n'
COLLECTION = {
    "mapped.yar": MAPPED,
    "sub/bare.yara": BARE_CRLF,
    "index.yar": INDEX,
    "android.yar": ANDROID,
    "broken.yar": BROKEN,
    "zz/dup.yar": DUPLICATE,
    "README.md": "not a rule file\n",
    "LICENSE": "GPL-2.0 terms\n",
}


def collection(root: Path) -> Path:
    for rel, text in COLLECTION.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(text.encode())
    return root


def test_a_collection_becomes_a_tree_that_loads_strictly(tmp_path: Path) -> None:
    src = collection(tmp_path / "src")
    report = import_tree(src, tmp_path / "tree", source="acme")
    rules = load_rules(read_directory(tmp_path / "tree"), strict=True)  # every required field, compiles
    by_name = {r.name: r for r in rules.yara}
    assert set(by_name) == {"Mapped_One", "Own_Id", "Helper", "Uses_Helper", "Plain_Pe", "Fine", "Unique_Z"}
    one = by_name["Mapped_One"].meta
    assert one["id"] == "7f0c2a34-0000-4000-8000-000000000001" and one["date"] == "2021-03-04"
    assert one["author"] == "Jane Analyst" and one["version"] == "1"
    assert one["reference"] == "acme:mapped.yar" and one["description"] == "Mapped_One from acme"
    assert one["family"] == "dropper" and one["uuid"] == one["id"]  # the original keys stay
    assert by_name["Own_Id"].id == "C-42" and by_name["Own_Id"].version == "3"
    assert by_name["Helper"].id == "acme:sub/bare.yara:Helper" and by_name["Helper"].meta["author"] == "acme"
    assert report.rules_read == 10 and report.rules_written == 7
    assert report.defaults["id"] == 5 and report.mapped == {"id<-uuid": 1, "date<-last_modified": 1}
    left = {(x.file, x.rule): x.check for x in report.left_out}
    assert left == {
        ("android.yar", "Needs_Android"): "unknown-module",
        ("broken.yar", "Broken"): "compile",
        ("zz/dup.yar", "Mapped_One"): "duplicate-name",
    }
    assert report.missing_modules == {"androguard": 1}
    broken = next(x for x in report.left_out if x.rule == "Broken")
    assert broken.message == "does not compile: error[E009]: unknown identifier `no_such_thing`"
    assert [(s.file, s.check) for s in report.skipped] == [("index.yar", "include-only")]
    assert (
        report.licences == ("LICENSE",) and (tmp_path / "tree" / "LICENSE").read_text() == "GPL-2.0 terms\n"
    )
    assert not (tmp_path / "tree" / "index.yar").exists() and not (tmp_path / "tree" / "README.md").exists()
    assert 'import "androguard"' not in (tmp_path / "tree" / "android.yar").read_text()


_ADDED = re.compile(rb'\r?\n[ \t]*(?:id|version|author|date|description|reference) = "[^"\r\n]*"(?=\r?\n)')


def _added(written: bytes, original: bytes) -> list[bytes]:
    """The field lines of ``written`` that ``original`` does not have."""
    lines = {line.strip() for line in original.splitlines()}
    return [m.group() for m in _ADDED.finditer(written) if m.group().strip() not in lines]


def _without_added(written: bytes, original: bytes) -> bytes:
    for line in _added(written, original):
        written = written.replace(line, b"", 1)
    return written


def test_rule_text_is_verbatim_but_for_the_added_meta_lines_in_the_file_s_own_line_endings(
    tmp_path: Path,
) -> None:
    src = collection(tmp_path / "src")
    import_tree(src, tmp_path / "tree", source="acme")
    written = (tmp_path / "tree" / "mapped.yar").read_bytes()
    assert written != MAPPED.encode()
    # Only whole field lines were added (and, in a one-line meta section, a line break before the original's).
    assert len(_added(written, MAPPED.encode())) == 9
    assert _without_added(written, MAPPED.encode()).split() == MAPPED.encode().split()
    one = written[written.index(b"rule Mapped_One") : written.index(b"rule Own_Id")]
    assert one == MAPPED.encode()[MAPPED.index("rule Mapped_One") : MAPPED.index("rule Own_Id")].replace(
        b"    meta:\n",
        b'    meta:\n        id = "7f0c2a34-0000-4000-8000-000000000001"\n        version = "1"\n'
        b'        date = "2021-03-04"\n        description = "Mapped_One from acme"\n'
        b'        reference = "acme:mapped.yar"\n',
    )
    crlf = (tmp_path / "tree" / "sub" / "bare.yara").read_bytes()
    assert b"\n" not in crlf.replace(b"\r\n", b"")  # every line ends in CRLF, the added ones too
    helper = (
        b"private rule Helper\r\n{\r\n  meta:\r\n"
        b'      id = "acme:sub/bare.yara:Helper"\r\n      version = "1"\r\n      author = "acme"\r\n'
        b'      date = "unknown"\r\n      description = "Helper from acme"\r\n'
        b'      reference = "acme:sub/bare.yara"\r\n  condition:\r\n    uint16(0) == 0x5A4D\r\n}\r\n'
    )
    assert crlf.startswith(helper)
    tree = load_rules(read_directory(tmp_path / "tree"), strict=True)
    for r in tree.yara:  # each rule's text is exactly its bytes in the written file
        assert r.text.encode() in (tmp_path / "tree" / r.file).read_bytes()


def test_the_same_collection_gives_the_same_bytes(tmp_path: Path) -> None:
    src = collection(tmp_path / "src")
    first = import_tree(src, tmp_path / "a", source="acme")
    second = import_tree(src, tmp_path / "b", source="acme")
    assert first.to_dict() | {"dest": ""} == second.to_dict() | {"dest": ""}
    files_a = {
        p.relative_to(tmp_path / "a"): p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()
    }
    files_b = {
        p.relative_to(tmp_path / "b"): p.read_bytes() for p in (tmp_path / "b").rglob("*") if p.is_file()
    }
    assert files_a == files_b and len(files_a) == 6


def test_bad_input_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    src = collection(tmp_path / "src")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine\n")
    with pytest.raises(UsageError, match="is not an empty directory"):
        import_tree(src, tmp_path / "full", source="acme")
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
    with pytest.raises(UsageError, match="source name"):
        import_tree(src, tmp_path / "t1", source="../x")
    (tmp_path / "norules").mkdir()
    with pytest.raises(FormatError, match=r"holds no \.yar or \.yara file"):
        import_tree(tmp_path / "norules", tmp_path / "t2", source="acme")
    assert not (tmp_path / "t1").exists() and not (tmp_path / "t2").exists()


def _overt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "overt", *args], capture_output=True, text=True, timeout=120, env=os.environ
    )


def test_cli_import_reports_in_json_and_exits_2_on_bad_input(tmp_path: Path) -> None:
    src = collection(tmp_path / "src")
    r = _overt("avdb", "import", str(src), str(tmp_path / "tree"), "--source", "acme", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["rulesWritten"] == 7 and out["defaults"]["id"] == {
        "value": "<source>:<path>:<rule>",
        "rules": 5,
    }
    assert {x["check"] for x in out["leftOut"]} == {"unknown-module", "compile", "duplicate-name"}
    r = _overt("avdb", "import", str(src), str(tmp_path / "tree"), "--source", "acme")
    assert r.returncode == 2 and "is not an empty directory" in r.stderr


def test_symlinks_a_bom_and_include_lines_are_reported_not_silent(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "bom.yar").write_bytes(b'\xef\xbb\xbfrule Bom_Rule { strings: $a = "bom-marker" condition: $a }\n')
    (src / "inc.yar").write_text(
        'include "other.yar"\nrule Inc_Rule { strings: $a = "inc-marker" condition: $a }\n'
    )
    (tmp_path / "outside.yar").write_text('rule Outside { strings: $a = "out-marker" condition: $a }\n')
    (src / "link.yar").symlink_to(tmp_path / "outside.yar")
    report = import_tree(src, tmp_path / "dest", source="acme")
    assert [(s.file, s.check) for s in report.skipped] == [("link.yar", "symlink")]
    assert sorted((c.file, c.check) for c in report.changed) == [("bom.yar", "bom"), ("inc.yar", "include")]
    assert not (tmp_path / "dest" / "bom.yar").read_bytes().startswith(b"\xef\xbb\xbf")
    rules = load_rules(read_directory(tmp_path / "dest"), strict=True)  # the imported tree compiles
    assert {r.name for r in rules.yara} == {"Bom_Rule", "Inc_Rule"}
