"""Rule sources for the AV database tests. The EICAR file is assembled at run time, never stored whole."""

from __future__ import annotations

from overt.avdb.rules import RuleSet, load_rules
from overt.source.snapshot import FILE, SnapshotFile

# The EICAR test string, reversed and split so that no file of this repository contains it.
_EICAR_PARTS = ("*H+H$!ELIF-TSET-SURIVITNA-DRADNATS-RACIE$}7)CC7)^P(45XZP\\4[PA@%P!O5X",)


def eicar() -> bytes:
    return "".join(_EICAR_PARTS)[::-1].encode()


def meta(rule_id: str, **extra: str) -> str:
    fields = {
        "id": rule_id,
        "version": "1",
        "author": "overt tests",
        "date": "2026-11-28",
        "description": "test rule",
        "reference": "https://example.org/ref",
        **extra,
    }
    return "\n".join(f'    {k} = "{v}"' for k, v in fields.items())


def rule(name: str, rule_id: str, strings: str, condition: str, *, imports: str = "", **extra: str) -> str:
    body = f"  strings:\n{strings}\n" if strings else ""
    return f"{imports}rule {name} {{\n  meta:\n{meta(rule_id, **extra)}\n{body}  condition:\n    {condition}\n}}\n"


EICAR_RULE = rule(
    "EICAR_Test_File",
    "OVT-0001",
    '    $e = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE"',
    "$e at 28 and filesize < 128",
)


def hdb(lines: list[str]) -> str:
    header = "# version: 1\n# author: overt tests\n# date: 2026-11-28\n# description: test hashes\n# reference: https://example.org\n"
    return header + "\n".join(lines) + "\n"


def ruleset(files: dict[str, str], *, strict: bool = False) -> RuleSet:
    return load_rules(
        [SnapshotFile(path=p, kind=FILE, data=t.encode()) for p, t in files.items()], strict=strict
    )
