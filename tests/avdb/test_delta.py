"""Deltas rebuild the exact signed database or fail (and the endpoint falls back to the full one); the rule-level
diff shows reviewers what changed and what the auditor thinks of it."""

from __future__ import annotations

import contextlib
import lzma

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.avdb.delta import Delta, _apply_set_ops, _set_ops, apply_delta, make_delta, rule_diff
from overt.avdb.package import build_database, read_database, serialise
from overt.errors import FormatError, VerificationError
from tests.avdb.samples import EICAR_RULE, hdb, rule, ruleset

MANY = "".join(
    rule(f"Family_{i}", f"OVT-1{i:03d}", f'    $a = "family-{i}-marker-string"', "$a") for i in range(30)
)
V1 = {
    "yara/eicar.yar": EICAR_RULE,
    "yara/families.yar": MANY,
    "hashes/a.hdb": hdb([f"{i:032x}:{100 + i}:Overt.Hash.{i}" for i in range(20)]),
}
V2 = {
    "yara/eicar.yar": EICAR_RULE,
    "yara/families.yar": MANY.replace('"family-7-marker-string"', '"family-7-marker-string-v2"').replace(
        'id = "OVT-1007"\n    version = "1"', 'id = "OVT-1007"\n    version = "2"'
    )
    + rule("Family_New", "OVT-2000", '    $a = "brand-new-family"', "$a"),
    "hashes/a.hdb": hdb([f"{i:032x}:{100 + i}:Overt.Hash.{i}" for i in range(1, 21)]),
}


def db(files: dict[str, str], version: int, *, compiled: bool = True) -> bytes:
    rules = ruleset(files, strict=True)
    # What a build's sandboxes produce (tests/avdb/test_package.py checks that they agree with serialise).
    blob = serialise(dict(rules.yara_files)) if compiled else None
    return build_database(rules, name="main", version=version, compiled=blob)


@pytest.mark.parametrize("compiled", [True, False])
def test_delta_rebuilds_the_exact_database(compiled):
    v1, v2 = db(V1, 1, compiled=compiled), db(V2, 2, compiled=compiled)
    delta = make_delta(read_database(v1), read_database(v2))
    assert len(delta) < len(v2) / 4
    assert apply_delta(v1, delta, read_database(v2).digest) == v2


def test_a_delta_is_never_trusted_on_its_own():
    v1, v2, v3 = db(V1, 1), db(V2, 2), db(V2, 3)
    delta = make_delta(read_database(v1), read_database(v2))
    with pytest.raises(VerificationError, match="does not lead to the database the provenance names"):
        apply_delta(v1, delta, read_database(v3).digest)
    with pytest.raises(VerificationError, match="does not start from the installed database"):
        apply_delta(v2, delta, read_database(v2).digest)
    doc = lzma.decompress(delta).replace(b"brand-new-family", b"brand-new-famili")
    with pytest.raises(VerificationError, match="does not match its signed digest"):
        apply_delta(v1, lzma.compress(doc), read_database(v2).digest)
    with pytest.raises(FormatError):
        apply_delta(v1, b"garbage", read_database(v2).digest)


def test_rule_diff_for_reviewers():
    v1 = read_database(db(V1, 1, compiled=False))
    hunting = dict(V2)
    hunting["yara/extra.yar"] = rule("Memo_Banner", "OVT-3000", '    $a = "TOP SECRET//SI//NOFORN"', "$a")
    v2 = read_database(db(hunting, 2, compiled=False))
    changes = {c.rule_id: c for c in rule_diff(v1, v2)}
    assert changes["OVT-1007"].change == "changed" and changes["OVT-1007"].new_version == "2"
    assert '+    $a = "family-7-marker-string-v2"' in changes["OVT-1007"].diff
    assert changes["OVT-2000"].change == "added" and changes["Overt.Hash.0"].change == "removed"
    assert changes["Overt.Hash.20"].change == "added"
    assert {f.check for f in changes["OVT-3000"].findings} >= {"sensitive-marking", "canary-hit"}
    assert not changes["OVT-2000"].findings
    assert "OVT-0001" not in changes


@settings(max_examples=50)
@given(st.binary(max_size=300))
def test_fuzz_delta_parsing(data):
    with contextlib.suppress(FormatError):
        Delta.from_bytes(data)
    with contextlib.suppress(FormatError):
        Delta.from_bytes(lzma.compress(data))


def test_a_chain_of_deltas():
    v3_files = dict(V2)
    v3_files["yara/eicar.yar"] = EICAR_RULE + rule("Third", "OVT-4000", '    $a = "third-version"', "$a")
    v1, v2, v3 = db(V1, 1), db(V2, 2), db(v3_files, 3)
    d12 = make_delta(read_database(v1), read_database(v2))
    d23 = make_delta(read_database(v2), read_database(v3))
    step = apply_delta(v1, d12, "", check=False)
    assert apply_delta(step, d23, read_database(v3).digest) == v3
    with pytest.raises(VerificationError):
        apply_delta(v1, d23, read_database(v3).digest)


_LINE = st.text(alphabet="0123456789abcdef:.Hx", min_size=1, max_size=24)


@settings(max_examples=200)
@given(st.sets(_LINE, max_size=12), st.sets(_LINE, max_size=12))
def test_signature_set_changes_round_trip(old, new):
    before = ("\n".join(sorted(old)) + "\n").encode() if old else b""
    after = ("\n".join(sorted(new)) + "\n").encode() if new else b""
    change = _set_ops(before, after)
    assert _apply_set_ops(before, change) == after


def test_added_signatures_travel_column_by_column():
    # The database's clamav/ files are the sorted signature lines, without the source's headers.
    before, after = (
        "".join(f"{i:032x}:{100 + i}:Overt.Hash.{i}\n" for i in range(n)).encode() for n in (3, 5)
    )
    change = _set_ops(before, after)
    assert change["columns"] == [f"{3:032x}\n{4:032x}", "103\n104", "Overt.Hash.3\nOvert.Hash.4"]
    assert _apply_set_ops(before, change) == after
    for bad in (["a\nb", "1", "x"], ["a", "1"], [1, 2, 3]):
        with pytest.raises(FormatError, match="malformed signature-set change"):
            _apply_set_ops(before, {"columns": bad, "remove": []})
