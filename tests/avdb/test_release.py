"""Releasing databases: a document-hunting rule blocks the release, a signed and logged waiver unblocks it,
versions only move forward, and endpoints install only what verifies and is logged."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from overt.attest.dsse import Envelope
from overt.attest.statement import Statement
from overt.avdb.install import install, installed
from overt.avdb.package import read_database
from overt.avdb.release import AvdbStore, Refused, Released, audit_rules, read_report, release, waive
from overt.errors import (
    ConfigError,
    InclusionError,
    PolicyError,
    SignatureError,
    UsageError,
    VerificationError,
)
from overt.home import Home
from overt.keys.jurisdiction import AVDB_AUDIT_V1, AVDB_WAIVER_V1
from overt.keys.registry import Role
from overt.source.escrow import read_directory
from overt.tlog.client import LogClient, directory_fetcher
from tests.avdb.conftest import entries
from tests.avdb.samples import EICAR_RULE, hdb, rule

HUNTER = rule(
    "Pdf_Ministry_Memo",
    "OVT-0666",
    '    $pdf = "%PDF"\n    $m = "TOP SECRET"\n    $w = "ministry of defence"',
    "$pdf at 0 and $m and $w",
)


def tree(tmp_path: Path, files: dict[str, str], name: str = "rules") -> list:
    root = tmp_path / name
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return read_directory(root)


def do_release(h: Home, files: list, version: int) -> Released | Refused:
    return release(
        AvdbStore(h.paths.public),
        h.escrow,
        files,
        name="main",
        version=version,
        context=h.conveyor_context(auditor=True),
    )


def statements(h: Home, predicate_type: str) -> list[Statement]:
    out = []
    for e in entries(h):
        env = Envelope.from_bytes(e)
        st = Statement.from_bytes(env.payload)
        if st.predicate_type == predicate_type and env.signatures:
            out.append(st)
    return out


def test_document_hunting_rule_blocks_release_until_waived(av, tmp_path):
    files = tree(tmp_path, {"yara/eicar.yar": EICAR_RULE, "yara/memo.yar": HUNTER})
    refused = do_release(av, files, 1)
    assert isinstance(refused, Refused)
    checks = {f.check for f in refused.unwaived}
    assert {"sensitive-marking", "document-only"} <= checks
    assert not (av.paths.public / "avdb" / "main" / "1.avdb").exists()
    # The audit that refused it is signed by the auditor key and logged.
    (report,) = statements(av, AVDB_AUDIT_V1)
    found = read_report(AvdbStore(av.paths.public), "main", report)
    assert {f["id"] for f in found} == {f.id for f in refused.unwaived}

    for f in refused.unwaived:
        waive(
            AvdbStore(av.paths.public),
            name="main",
            finding_id=f.id,
            reason="lab test of the auditor",
            context=av.conveyor_context(auditor=True),
        )
    waivers = statements(av, AVDB_WAIVER_V1)
    assert {w.predicate["findingId"] for w in waivers} == {f.id for f in refused.unwaived}
    assert all(w.predicate["reason"] == "lab test of the auditor" for w in waivers)

    released = do_release(av, files, 1)
    assert isinstance(released, Released)
    assert set(released.waived) == {f.id for f in refused.unwaived}
    assert released.digest == hashlib.sha256(released.path.read_bytes()).hexdigest()


def test_clean_release_monotonic_versions_and_install(av, tmp_path):
    v1 = do_release(av, tree(tmp_path, {"yara/eicar.yar": EICAR_RULE}), 1)
    assert isinstance(v1, Released) and not v1.audit.findings and v1.compiled
    definition = Statement.from_bytes(Envelope.from_bytes(v1.provenance.entry).payload).predicate[
        "buildDefinition"
    ]
    assert definition["internalParameters"]["compiler"] == {
        "yaraX": "1.23.0",
        "sandbox": "bubblewrap",
        "runs": 2,
    }
    with pytest.raises(PolicyError, match="monotonic"):
        do_release(
            av,
            tree(
                tmp_path,
                {
                    "yara/eicar.yar": EICAR_RULE,
                    "h/a.hdb": hdb(["44d88612fea8a8f36de82e1278abb02f:68:Overt.Test.EICAR-HDB"]),
                },
                "r2",
            ),
            1,
        )
    v2 = do_release(
        av,
        tree(
            tmp_path,
            {
                "yara/eicar.yar": EICAR_RULE,
                "h/a.hdb": hdb(["44d88612fea8a8f36de82e1278abb02f:68:Overt.Test.EICAR-HDB"]),
            },
            "r3",
        ),
        2,
    )
    assert isinstance(v2, Released) and v2.audit.new_or_changed == 1  # only the new signature was new

    builder = av.registry.current(Role.BUILDER, datetime.now(UTC))
    agent = tmp_path / "agent"
    log = LogClient(directory_fetcher(av.log.paths.public), av.log.policy())
    prov1 = v1.provenance.entry
    got = install(agent, v1.path.read_bytes(), prov1, [builder.key], log=log)
    assert got.version == 1 and got.log_index == v1.provenance.receipt.index
    install(agent, v2.path.read_bytes(), v2.provenance.entry, [builder.key], log=log)
    assert installed(agent) == v2.path.read_bytes()
    with pytest.raises(PolicyError, match="only move forward"):
        install(agent, v1.path.read_bytes(), prov1, [builder.key], log=log)
    # Wrong database for the provenance, wrong key, provenance not in the log, a database swapped on disk.
    with pytest.raises(VerificationError, match="not the one its provenance names"):
        install(tmp_path / "a2", v2.path.read_bytes(), prov1, [builder.key])
    other = av.registry.current(Role.AUDITOR, datetime.now(UTC))
    with pytest.raises(SignatureError):
        install(tmp_path / "a3", v1.path.read_bytes(), prov1, [other.key])
    fresh = Home.init(tmp_path / "elsewhere")
    fresh.log.append(b"some other entry")
    with pytest.raises(InclusionError):
        install(
            tmp_path / "a4",
            v1.path.read_bytes(),
            prov1,
            [builder.key],
            log=LogClient(directory_fetcher(fresh.log.paths.public), fresh.log.policy()),
        )
    (agent / "avdb" / "main.avdb").write_bytes(v1.path.read_bytes())
    with pytest.raises(VerificationError, match="does not match"):
        installed(agent)
    # Swapped in together with an edited record: the stored provenance names other bytes.
    record = agent / "avdb" / "main.installed.json"
    record.write_text(record.read_text().replace(v2.digest, v1.digest))
    with pytest.raises(VerificationError, match="not the one its stored provenance names"):
        installed(agent)
    with pytest.raises(ConfigError, match="no verified database"):
        installed(tmp_path / "empty-agent")


def test_endpoint_updates_through_deltas_and_falls_back_to_the_full_database(av, tmp_path):
    from overt.avdb.delta import make_delta
    from overt.avdb.install import update
    from overt.avdb.package import read_database

    v1 = do_release(av, tree(tmp_path, {"yara/eicar.yar": EICAR_RULE}, "u1"), 1)
    extra = rule("Dropper_Z", "OVT-0900", '    $a = "dropper-z-marker"', "$a")
    v2 = do_release(av, tree(tmp_path, {"yara/eicar.yar": EICAR_RULE + extra}, "u2"), 2)
    assert isinstance(v1, Released) and isinstance(v2, Released)
    builder = av.registry.current(Role.BUILDER, datetime.now(UTC))
    delta = make_delta(read_database(v1.path.read_bytes()), read_database(v2.path.read_bytes()))
    fetched: list[int] = []

    def full() -> bytes:
        fetched.append(1)
        return v2.path.read_bytes()

    for name, deltas, via_delta in (
        ("good", [delta], True),
        ("bad", [delta[:-7]], False),
        ("none", [], False),
    ):
        agent = tmp_path / f"agent-{name}"
        install(agent, v1.path.read_bytes(), v1.provenance.entry, [builder.key])
        result = update(agent, v2.provenance.entry, [builder.key], deltas=deltas, fetch_full=full)
        assert result.via_delta is via_delta, result.fallback_reason
        assert installed(agent) == v2.path.read_bytes()
    assert len(fetched) == 2


def test_a_source_problem_cannot_be_waived(av, tmp_path):
    """A rule without its metadata fails the strict build whatever is waived: a waiver for it used to be signed
    and logged, and then the build failed anyway."""
    bare = 'rule Bare { strings: $a = "x5O!P%@AP" condition: $a }\n'
    refused = do_release(av, tree(tmp_path, {"yara/eicar.yar": EICAR_RULE, "yara/bare.yar": bare}), 1)
    assert isinstance(refused, Refused)
    (finding,) = [f for f in refused.unwaived if f.check == "missing-metadata"]
    size = len(entries(av))
    with pytest.raises(PolicyError, match="no waiver lifts it; fix the rule"):
        waive(
            AvdbStore(av.paths.public),
            name="main",
            finding_id=finding.id,
            reason="x",
            context=av.conveyor_context(auditor=True),
        )
    assert len(entries(av)) == size  # nothing signed, nothing logged
    assert not (av.paths.public / "avdb" / "waivers").exists()


def test_a_version_that_can_never_be_released_is_refused_before_anything_is_escrowed_or_logged(av, tmp_path):
    """The audit escrows the rule tree and logs its signed report: a version of 0, or one the database is
    already past, must be refused before it, not after."""
    files = tree(tmp_path, {"yara/eicar.yar": EICAR_RULE})
    before = len(entries(av))
    for version in (0, -3):
        with pytest.raises(UsageError, match=rf"^database version {version} is not a positive integer$"):
            do_release(av, files, version)
    assert len(entries(av)) == before and av.escrow.entries() == []
    assert isinstance(do_release(av, files, 1), Released)
    released = len(entries(av))
    with pytest.raises(PolicyError, match="monotonic: main is already at version 1"):
        do_release(av, tree(tmp_path, {"yara/eicar.yar": EICAR_RULE + "\n"}, "again"), 1)
    assert len(entries(av)) == released


def test_a_tree_with_thousands_of_findings_audits_and_logs_its_report_by_digest(av, tmp_path):
    """The statement used to carry every finding inline and failed beyond the log's 64 KiB entry limit (about
    180 findings): now it names the published report by digest and carries only counts."""
    bare = {
        f"yara/f{n:02}.yar": "".join(f"rule R{n:02}_{i:03} {{ condition: false }}\n" for i in range(100))
        for n in range(30)
    }
    store = AvdbStore(av.paths.public)
    audited = audit_rules(
        store, av.escrow, tree(tmp_path, bare), name="main", context=av.conveyor_context(auditor=True)
    )
    assert len(audited.report.findings) >= 3000
    assert len(audited.signed.entry) < 64 << 10
    (statement,) = statements(av, AVDB_AUDIT_V1)
    p = statement.predicate
    assert p["findings"] == len(audited.report.findings) and p["blocking"] == len(audited.unwaived)
    report_file = av.paths.public / p["report"]
    digest = hashlib.sha256(report_file.read_bytes()).hexdigest()
    assert {s.name: s.digest["sha256"] for s in statement.subject}[p["report"]] == digest
    assert len(read_report(store, "main", statement)) == len(audited.report.findings)


def test_a_report_altered_after_signing_is_refused(av, tmp_path):
    files = tree(tmp_path, {"yara/eicar.yar": EICAR_RULE, "yara/memo.yar": HUNTER})
    refused = do_release(av, files, 1)
    assert isinstance(refused, Refused)
    (report_file,) = (av.paths.public / "avdb" / "main" / "audits").glob("*.report.json")
    data = report_file.read_bytes()
    report_file.write_bytes(data.replace(b"TOP SECRET", b"TOP SECRE7"))
    size = len(entries(av))
    with pytest.raises(VerificationError, match="is not the one its signed statement names"):
        waive(
            AvdbStore(av.paths.public),
            name="main",
            finding_id=refused.unwaived[0].id,
            reason="x",
            context=av.conveyor_context(auditor=True),
        )
    assert len(entries(av)) == size  # nothing signed or logged on the strength of an altered report


def test_windows_line_endings_keep_each_rule_s_text_and_digest_exact_end_to_end(av, tmp_path):
    crlf = EICAR_RULE.replace("\n", "\r\n").encode()
    root = tmp_path / "crlf"
    (root / "yara").mkdir(parents=True)
    (root / "yara" / "eicar.yar").write_bytes(crlf)
    released = do_release(av, read_directory(root), 1)
    assert isinstance(released, Released), [f.message for f in released.unwaived]
    db = read_database(released.path.read_bytes())
    assert db.files["yara/yara/eicar.yar"] == crlf
    (stored,) = db.rules().yara
    assert stored.text.encode() == crlf.rstrip(b"\r\n")
    assert stored.digest == hashlib.sha256(crlf.rstrip(b"\r\n")).hexdigest()
