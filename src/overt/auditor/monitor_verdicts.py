"""The monitor's judgement of the repository, after the entries: releases and their verdicts (flag 1), one
artifact per version across targets metadata versions (flag 2), and every served metadata file against the
tuf-metadata/v1 statements the log holds (flag 3). See :mod:`overt.auditor.monitor_judge` for the alert kinds.

A release's deadline runs from when the monitor first saw it in the repository's targets metadata: the log
carries no time of its own, and the timestamps a statement carries are the vendor's claim. A VSA counts only
once its signature by a trusted auditor key verified (as it was read, or here, the entry fetched again by
index and checked against its leaf hash); a key counts once however many verdicts it logged, and a PASSED
verdict counts for the release whose path it names (as an endpoint counts them,
:func:`overt.distribute.verdicts.verdicts_passed`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from securesystemslib.signer import Key

from overt.attest.verify import key_identity
from overt.attest.vsa import FAILED, PASSED
from overt.auditor.monitor_entries import verified_signers
from overt.auditor.monitor_judge import Judge
from overt.auditor.monitor_repo import Release, RepositoryView


@dataclass(frozen=True, slots=True, kw_only=True)
class Pending:
    """A release still inside its verdict deadline."""

    path: str
    sha256: str
    passed: int
    required: int
    deadline: datetime

    def to_dict(self) -> dict[str, object]:
        return {
            "target": self.path,
            "sha256": self.sha256,
            "passed": self.passed,
            "required": self.required,
            "deadline": self.deadline.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def judge_repository(judge: Judge, view: RepositoryView) -> list[Pending]:
    """Releases (flags 1 and 2) and metadata files (flag 3) of ``view``; the releases still pending."""
    with judge.state.transaction() as db:
        for release in view.releases:
            _release_seen(judge, db, release)
        pending = _verdicts(judge, db)
        for served in view.files:
            _metadata(judge, db, served.name, served.sha256, served.role, served.keys)
        judge.state.put(db, "tuf_versions", dict(view.versions))
    return pending


def _release_seen(judge: Judge, db: sqlite3.Connection, r: Release) -> None:
    row = db.execute(
        "SELECT sha256, provenance, path FROM releases WHERE kind = ? AND name = ? AND version = ?",
        (r.kind, r.name, r.version_key),
    ).fetchone()
    if row is None:
        db.execute(
            "INSERT INTO releases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
            (
                r.kind,
                r.name,
                r.version_key,
                r.version,
                r.path,
                r.sha256,
                r.provenance,
                r.log_index,
                judge.stamp,
            ),
        )
        return
    sha, provenance, path = row
    if sha != r.sha256 or (provenance and r.provenance and provenance != r.provenance):
        what = "artifact" if sha != r.sha256 else "provenance"
        judge.alert(
            db,
            "duplicate-version",
            None,
            f"{r.kind} {r.name} {r.version}",
            f"{r.listed_in} lists {r.path} with {what} {(r.sha256 if what == 'artifact' else r.provenance or '')[:16]}; "
            f"it was released as {path} with {(sha if what == 'artifact' else provenance)[:16]}",
        )


def _verdicts(judge: Judge, db: sqlite3.Connection) -> list[Pending]:
    trusted = {key_identity(k).hex(): k for k in judge.auditors}
    pending = []
    rows = db.execute(
        "SELECT kind, name, version, path, sha256, first_seen FROM releases WHERE status = 'pending'"
    ).fetchall()
    for kind, name, version, path, sha, first_seen in rows:
        passed, failed = _count(judge, db, sha, path, trusted)
        status = "pending"
        if failed:
            status = "failed"
            judge.alert(
                db,
                "release-failed",
                failed[0],
                path,
                f"trusted auditor key {failed[1][:16]} FAILED {path} (sha256 {sha[:16]})",
            )
        elif len(passed) >= judge.threshold:
            status = "verified"
        else:
            seen = datetime.fromtimestamp(first_seen, judge.now.tzinfo)
            if judge.now - seen >= judge.deadline:
                status = "alerted"
                judge.alert(
                    db,
                    "release-unverified",
                    None,
                    path,
                    f"{len(passed)} of the {judge.threshold} distinct trusted auditors required PASSED {path} "
                    f"(sha256 {sha[:16]}) within {judge.deadline / timedelta(hours=1):g} h of it being released",
                )
            else:
                pending.append(
                    Pending(
                        path=path,
                        sha256=sha,
                        passed=len(passed),
                        required=judge.threshold,
                        deadline=seen + judge.deadline,
                    )
                )
        if status != "pending":
            db.execute(
                "UPDATE releases SET status = ? WHERE kind = ? AND name = ? AND version = ?",
                (status, kind, name, version),
            )
    return pending


def _count(
    judge: Judge, db: sqlite3.Connection, sha: str, path: str, trusted: dict[str, Key]
) -> tuple[set[str], tuple[int, str] | None]:
    """Distinct trusted keys with a verified PASSED naming ``path``; the first verified FAILED, if any."""
    passed: set[str] = set()
    failed = None
    rows = db.execute(
        "SELECT idx, leaf, names, result, keyids, verified FROM vsa WHERE subject = ? ORDER BY idx",
        (sha,),
    ).fetchall()
    for idx, entry_sha, names, result, keyids, verified in rows:
        ids = (
            json.loads(verified)
            if verified is not None
            else _verify_vsa(judge, db, idx, entry_sha, sha, json.loads(keyids), trusted)
        )
        for identity in (i for i in ids if i in trusted):
            if result == FAILED and failed is None:
                failed = (idx, trusted[identity].keyid)
            elif result == PASSED and names == path:
                passed.add(identity)
    return passed, failed


def _verify_vsa(
    judge: Judge,
    db: sqlite3.Connection,
    idx: int,
    entry_sha: str,
    subject: str,
    keyids: list[str],
    trusted: dict[str, Key],
) -> list[str]:
    named = [k for k in trusted.values() if k.keyid in keyids or "" in keyids]
    entry = judge.fetch_entry(idx, entry_sha) if named else b""
    ids = [key_identity(k).hex() for k in verified_signers(entry, named)] if named else []
    db.execute("UPDATE vsa SET verified = ? WHERE idx = ? AND subject = ?", (json.dumps(ids), idx, subject))
    return ids


def _metadata(
    judge: Judge, db: sqlite3.Connection, name: str, sha: str, role: str, keys: Sequence[Key]
) -> None:
    if db.execute("SELECT 1 FROM metadata WHERE name = ? AND sha256 = ?", (name, sha)).fetchone():
        return
    identities = {key_identity(k).hex() for k in keys}
    rows = db.execute(
        "SELECT idx, leaf, verified FROM tuf WHERE name = ? AND digest = ?", (name, sha)
    ).fetchall()
    for idx, entry_sha, verified in rows:
        if verified is None:
            entry = judge.fetch_entry(idx, entry_sha)
            ids = [key_identity(k).hex() for k in verified_signers(entry, keys)]
            db.execute("UPDATE tuf SET verified = ? WHERE idx = ?", (json.dumps(ids), idx))
        else:
            ids = json.loads(verified)
        if identities & set(ids):
            db.execute("INSERT INTO metadata VALUES (?, ?)", (name, sha))
            return
    why = (
        f"the tuf-metadata/v1 statement(s) logging it (log index {', '.join(str(r[0]) for r in rows)}) are not "
        f"signed by a key of the {role} role"
        if rows
        else "no tuf-metadata/v1 statement in the log names it"
    )
    judge.alert(
        db,
        "unlogged-metadata",
        None,
        name,
        f"the repository serves {name} (sha256 {sha[:16]}), but {why}",
    )
