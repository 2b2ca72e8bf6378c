"""The monitor's judgement of the repository, after the entries: releases and their verdicts (flag 1), one
artifact per version across targets metadata versions (flag 2), every served metadata file against the
tuf-metadata/v1 statements the log holds (flag 3), and every targets metadata file those statements log
against what the repository serves (``metadata-withheld``). See :mod:`overt.auditor.monitor_judge` for the
alert kinds.

A release's deadline runs from when the monitor first saw it in the repository's targets metadata: the log
carries no time of its own, and the timestamps a statement carries are the vendor's claim. A VSA counts only
once its signature by a trusted auditor key verified (as it was read, or here, the entry fetched again by
index and checked against its leaf hash); a key counts once however many verdicts it logged. A PASSED
verdict counts as an endpoint counts it (:func:`overt.distribute.verdicts.verdicts_passed`): for the release
whose path a subject names, or whose provenance its ``inputAttestations`` name
(:func:`~overt.distribute.verdicts.names_provenance`, a rebuilder's verdict). A FAILED one by a trusted key
on a released artifact's sha256 alerts whenever it arrives, whatever the release's status.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from securesystemslib.signer import Key

from overt.attest.verify import key_identity
from overt.attest.vsa import PASSED, VerificationSummary
from overt.auditor.monitor_entries import envelope_statement, verified_signers
from overt.auditor.monitor_judge import Judge
from overt.auditor.monitor_repo import NOT_TARGETS, Release, RepositoryView, role_of
from overt.distribute.verdicts import names_provenance
from overt.errors import FormatError

# fetch(name) -> the served metadata file ``metadata/<name>``, None when the repository answers 404 (any other
# failure raises TransportError).
FileFetch = Callable[[str], bytes | None]


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


def judge_repository(judge: Judge, view: RepositoryView, fetch_file: FileFetch) -> list[Pending]:
    """Releases (flags 1 and 2), metadata files (flag 3) and withheld ones of ``view``; the releases still
    pending."""
    with judge.state.transaction() as db:
        for release in view.releases:
            _release_seen(judge, db, release)
        _failed(judge, db)
        pending = _verdicts(judge, db)
        for served in view.files:
            _metadata(judge, db, served.name, served.sha256, served.role, served.keys)
        _withheld(judge, db, view, fetch_file)
        judge.state.put(db, "tuf_versions", dict(view.versions))
    return pending


def _release_seen(judge: Judge, db: sqlite3.Connection, r: Release) -> None:
    """Record a released artifact (every one: two artifacts of one version are both released, and each is
    judged); alert a version no release could have, a second artifact or provenance for a version, and a
    target path that names other bytes than it did. ``view.releases`` comes oldest metadata version first,
    so "the release" is the one published first, whenever this monitor started."""
    subject = f"{r.kind} {r.name} {r.version}"
    if r.problem is not None:
        judge.alert(
            db,
            "malformed-version",
            None,
            subject,
            f"{r.listed_in} lists {r.path} (sha256 {r.sha256[:16]}) as a {r.kind} release, but {r.problem}: "
            "no release could have that version",
            distinct=r.sha256,
        )
    first = db.execute(
        "SELECT sha256, listed_in FROM artifacts WHERE path = ? ORDER BY seq LIMIT 1", (r.path,)
    ).fetchone()
    if first is not None and first[0] != r.sha256:
        judge.alert(
            db,
            "target-changed",
            None,
            r.path,
            f"{r.listed_in} lists {r.path} with sha256 {r.sha256[:16]} (as {subject}); "
            f"{first[1] or 'an earlier version'} listed it with sha256 {first[0][:16]}: a target path names one "
            "artifact for good",
            distinct=r.sha256,
        )
    row = db.execute(
        "SELECT sha256, provenance, path FROM artifacts WHERE kind = ? AND name = ? AND version = ? "
        "ORDER BY seq LIMIT 1",
        (r.kind, r.name, r.version_key),
    ).fetchone()
    db.execute(
        "INSERT OR IGNORE INTO artifacts (kind, name, version, shown, path, sha256, provenance, log_index, "
        "first_seen, status, listed_in) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
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
            r.listed_in,
        ),
    )
    if row is None:
        return
    sha, provenance, path = row
    if sha != r.sha256 or (provenance and r.provenance and provenance != r.provenance):
        what = "artifact" if sha != r.sha256 else "provenance"
        listed = r.sha256 if what == "artifact" else r.provenance or ""
        judge.alert(
            db,
            "duplicate-version",
            None,
            subject,
            f"{r.listed_in} lists {r.path} with {what} {listed[:16]}; "
            f"it was released as {path} with {(sha if what == 'artifact' else provenance)[:16]}",
            distinct=f"{r.sha256} {r.provenance or ''}",
        )


def _trusted(judge: Judge) -> dict[str, Key]:
    return {key_identity(k).hex(): k for k in judge.auditors}


def _identities(
    judge: Judge, db: sqlite3.Connection, idx: int, leaf: str, subject: str, keyids: str, verified: str | None
) -> list[str]:
    """Who of the trusted auditors signed the VSA row (verified as it was read, or now)."""
    if verified is not None:
        return list(json.loads(verified))
    return _verify_vsa(judge, db, idx, leaf, subject, json.loads(keyids), _trusted(judge))


def _failed(judge: Judge, db: sqlite3.Connection) -> None:
    """``release-failed`` for every verified FAILED VSA by a trusted key on a released artifact's sha256
    (every released artifact, whichever of two artifacts of one version it is), naming the provenance the
    verdict judged."""
    trusted = _trusted(judge)
    rows = db.execute(
        "SELECT a.seq, a.path, a.sha256, a.provenance, v.idx, v.leaf, v.keyids, v.verified "
        "FROM artifacts a JOIN vsa v ON v.subject = a.sha256 WHERE v.result = 'FAILED' ORDER BY v.idx, a.seq"
    ).fetchall()
    for seq, path, sha, provenance, idx, leaf, keyids, verified in rows:
        if db.execute(
            "SELECT 1 FROM alerts WHERE kind = 'release-failed' AND idx = ? AND subject = ? AND distinct_on = ?",
            (idx, path, sha),
        ).fetchone():
            continue
        signers = [
            trusted[i] for i in _identities(judge, db, idx, leaf, sha, keyids, verified) if i in trusted
        ]
        if not signers:
            continue
        judge.alert(
            db,
            "release-failed",
            idx,
            path,
            f"trusted auditor key {signers[0].keyid[:16]} FAILED {path} (sha256 {sha[:16]}): "
            f"{_judged(judge, idx, leaf, provenance)}",
            distinct=sha,
        )
        db.execute("UPDATE artifacts SET status = 'failed' WHERE seq = ?", (seq,))


def _judged(judge: Judge, idx: int, leaf: str, provenance: str | None) -> str:
    """Which build the FAILED VSA at ``idx`` judged (the provenance its ``inputAttestations`` name), and
    whether it is the provenance the release names."""
    released = (
        f"the release names provenance {provenance[:16]}" if provenance else "the release names no provenance"
    )
    try:
        summary = VerificationSummary.from_statement(envelope_statement(judge.fetch_entry(idx, leaf))[1])
    except FormatError as e:
        return f"its VSA predicate is malformed ({e}); {released}"
    named = [str(a.digest["sha256"]) for a in summary.input_attestations if a.digest.get("sha256")]
    if not named:
        return f"the verdict names no provenance; {released}"
    which = ", ".join(n[:16] for n in named)
    same = "the released build" if provenance in named else "another build of these bytes"
    return f"the verdict judged provenance {which} ({same}); {released}"


def _verdicts(judge: Judge, db: sqlite3.Connection) -> list[Pending]:
    trusted = _trusted(judge)
    pending = []
    rows = db.execute(
        "SELECT seq, path, sha256, provenance, first_seen FROM artifacts WHERE status = 'pending' ORDER BY seq"
    ).fetchall()
    for seq, path, sha, provenance, first_seen in rows:
        passed = _count(judge, db, sha, path, provenance, trusted)
        status = "pending"
        if len(passed) >= judge.threshold:
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
                    distinct=sha,
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
            db.execute("UPDATE artifacts SET status = ? WHERE seq = ?", (status, seq))
    return pending


def _count(
    judge: Judge, db: sqlite3.Connection, sha: str, path: str, provenance: str | None, trusted: dict[str, Key]
) -> set[str]:
    """Distinct trusted keys with a verified PASSED VSA on ``sha`` that binds to this release (module
    docstring); a VSA naming a trusted key it is not signed by is alerted (``forged-entry``)."""
    passed: set[str] = set()
    rows = db.execute(
        "SELECT idx, leaf, names, result, keyids, verified FROM vsa WHERE subject = ? AND result = ? "
        "ORDER BY idx",
        (sha, PASSED),
    ).fetchall()
    for idx, leaf, names, _result, keyids, verified in rows:
        ids = [i for i in _identities(judge, db, idx, leaf, sha, keyids, verified) if i in trusted]
        if not ids:
            _forged(judge, db, idx, leaf, json.loads(keyids))
            continue
        if names == path or _binds(judge, db, idx, leaf, sha, provenance):
            passed.update(ids)
    return passed


def _binds(
    judge: Judge, db: sqlite3.Connection, idx: int, leaf: str, sha: str, provenance: str | None
) -> bool:
    """Whether the VSA at ``idx`` names the release's ``provenance`` (names_provenance decides, once)."""
    if provenance is None:
        return False
    row = db.execute(
        "SELECT binds FROM vsa_binds WHERE idx = ? AND subject = ? AND provenance = ?", (idx, sha, provenance)
    ).fetchone()
    if row is not None:
        return bool(row[0])
    try:
        summary = VerificationSummary.from_statement(envelope_statement(judge.fetch_entry(idx, leaf))[1])
        binds = names_provenance(summary, provenance)
    except FormatError:
        binds = False
    db.execute("INSERT OR REPLACE INTO vsa_binds VALUES (?, ?, ?, ?)", (idx, sha, provenance, int(binds)))
    return binds


def _forged(judge: Judge, db: sqlite3.Connection, idx: int, leaf: str, keyids: list[str]) -> None:
    """A counted VSA naming a trusted key that did not sign it: ``forged-entry`` (once; the entry is fetched
    again to tell a bad signature from one overt's parser refuses)."""
    if not any(k.keyid in keyids for k in judge.auditors):
        return
    if db.execute("SELECT 1 FROM alerts WHERE kind = 'forged-entry' AND idx = ?", (idx,)).fetchone():
        return
    judge.verdict_signers(db, idx, judge.fetch_entry(idx, leaf), keyids)


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


def _signed_tuf(
    judge: Judge, db: sqlite3.Connection, idx: int, leaf: str, verified: str | None, keys: Sequence[Key]
) -> list[str]:
    if verified is not None:
        return list(json.loads(verified))
    ids = [key_identity(k).hex() for k in verified_signers(judge.fetch_entry(idx, leaf), keys)]
    db.execute("UPDATE tuf SET verified = ? WHERE idx = ?", (json.dumps(ids), idx))
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
        if identities & set(_signed_tuf(judge, db, idx, entry_sha, verified, keys)):
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
        distinct=sha,
    )


def _withheld(judge: Judge, db: sqlite3.Connection, view: RepositoryView, fetch_file: FileFetch) -> None:
    """``metadata-withheld``: a targets metadata version a statement by its role's key logs, at or below the
    version the repository serves now, whose logged bytes the repository does not serve (a version a
    targeted update served for a while, then deleted). A version above the served one is not published yet."""
    keys = {f.role: f.keys for f in view.files}
    served = {(f.name, f.sha256) for f in view.files}
    rows = db.execute(
        "SELECT idx, leaf, name, digest, role, verified FROM tuf t WHERE role NOT IN (?, ?, ?) "
        "AND NOT EXISTS (SELECT 1 FROM metadata m WHERE m.name = t.name AND m.sha256 = t.digest) "
        "AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.kind = 'metadata-withheld' AND a.idx = t.idx) "
        "ORDER BY idx",
        NOT_TARGETS,
    ).fetchall()
    for idx, leaf, name, digest, role, verified in rows:
        version, _, rest = name.partition(".")
        if (
            role_of(name) != role
            or not version.isdigit()
            or rest != f"{role}.json"
            or role not in keys
            or int(version) > view.versions.get(role, 0)
            or (name, digest) in served
        ):
            continue
        data = fetch_file(name)
        if data is not None and hashlib.sha256(data).hexdigest() == digest:
            continue  # served (an older version an earlier run judged)
        identities = {key_identity(k).hex() for k in keys[role]}
        if not identities & set(_signed_tuf(judge, db, idx, leaf, verified, keys[role])):
            continue  # not the role's statement: nobody vouched for such a file
        now = "another file" if data is not None else "nothing (404)"
        judge.alert(
            db,
            "metadata-withheld",
            idx,
            name,
            f"the log holds a statement by the {role} role's key for {name} (sha256 {digest[:16]}), but the "
            f"repository serves {now} under that name: nobody can check what that version listed",
            distinct=digest,
        )
