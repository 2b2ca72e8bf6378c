"""The monitor's judgements of entries, in log order (the repository's are :mod:`overt.auditor.monitor_verdicts`).

Alert kinds (docs/operations.md, Monitoring the log):

``release-unverified``  a release without k PASSED VSAs by distinct trusted auditor keys within the deadline
``release-failed``      a trusted auditor key FAILED a released artifact (whenever the verdict arrives; each
                        artifact listed for a version; the message names the provenance the verdict judged)
``verdict-failed``      a trusted auditor key FAILED a build, released or not (the provenance it names)
``duplicate-version``   two artifacts or provenances for one (product, version) or (database, version)
``target-changed``      a release target path listed with other bytes than an earlier metadata version gave it
``malformed-version``   an AV-database provenance whose database name or version no release could have, or a
                        release target whose version none could have (or, a product's, that its path denies)
``unlogged-metadata``   a served TUF metadata file no tuf-metadata/v1 statement by its role's key logs
``metadata-withheld``   a targets metadata file a statement by its role's key logs that the repository
                        does not serve (nobody can check what it listed)
``avdb-findings``       an AV-database audit report counting blocking findings; ``avdb-waiver``: a waiver
``jurisdiction``        a key signed a statement naming another jurisdiction than its record's
``builder-registry``    provenance from a builder not registered (at that point of the log) to the key's
                        jurisdiction
``rotation-unsigned``   a key-rotation/v1 statement not signed by the old key it names (or not a valid one)
``forged-entry``        an entry whose signature does not verify, or that overt's strict parser refuses (the
                        message says which; it counts for nothing), among those whose signature is checked:
                        an entry by a known vendor key that would raise an alert or change the monitor's
                        state, a FAILED VSA naming a trusted auditor key, a VSA naming a trusted auditor
                        key about a released artifact

Every alert about an entry rests on a verified signature: the judge checks the signature of the key the
entry names (its record: pinned in the auditor home, published on the vendor's site, or introduced by a
logged rotation; a trusted auditor key, for a verdict) before it alerts, and an entry by a key it does not
know is counted, never judged (a key of the trust policy's ``[auditors]`` or ``[builders]``, or one the
repository's TUF metadata names for a role, counts as known). A key record the vendor's site fails to serve (other than a 404: not published) stops the run
(:class:`KeyUnavailable`) before anything judged without it commits. A VSA counts toward a release, and a
tuf-metadata statement for a served file, only once its signature verified (by a worker as it was read, or
here, fetching the entry again by index, checked against its leaf hash).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from securesystemslib.signer import Key

from overt.attest.verify import key_identity
from overt.attest.vsa import FAILED, VerificationSummary
from overt.auditor.monitor_entries import (
    AUDIT,
    OTHER,
    PROVENANCE,
    REGISTRY,
    ROTATION,
    VSA,
    WAIVER,
    BundleFacts,
    Facts,
    SignerCounts,
    envelope_statement,
    named_keys,
    signed_by,
)
from overt.auditor.monitor_repo import avdb_name, avdb_version
from overt.auditor.monitor_state import MonitorState
from overt.errors import Error, FormatError, VerificationError
from overt.keys.builders import BuilderRegistry
from overt.keys.registry import KeyRecord, Role
from overt.keys.rotation import introduced_key

# fetch(keyid) -> the vendor's public key file for it, or None; entry(index, leaf hash) -> that entry's bytes.
KeyFetch = Callable[[str], bytes | None]
EntryFetch = Callable[[int, str], bytes]


class KeyUnavailable(Exception):
    """The vendor's site failed to serve a key record a judgement needs (not a 404): the run stops, and what
    it judged since its last commit is judged again by the next run."""

    def __init__(self, error: Error) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(slots=True, kw_only=True)
class Judge:
    """Judges one run's facts and repository view against the state (see the module docstring)."""

    state: MonitorState
    fetch_key: KeyFetch
    fetch_entry: EntryFetch
    auditors: Sequence[Key]
    threshold: int
    deadline: timedelta
    now: datetime
    known: frozenset[str] = frozenset()  # keyids of the trust policy's own keys (auditors, builders)
    keys: dict[str, KeyRecord | None] = field(default_factory=dict)
    unknown_signers: int = 0
    _builders: dict[str, Any] | None = (
        None  # the builder registry in force (a run that fails ends: no rollback)
    )

    def builders(self) -> dict[str, Any]:
        """The builder registry in force at the position read: version and exact id -> jurisdiction."""
        if self._builders is None:
            self._builders = self.state.get("registry", {"version": 0, "builders": {}})
        return self._builders

    @property
    def stamp(self) -> float:
        return self.now.timestamp()

    # --- keys ---------------------------------------------------------------------------------------

    def pin(self, records: Iterable[KeyRecord]) -> None:
        with self.state.transaction() as db:
            for r in records:
                db.execute("INSERT OR REPLACE INTO keys VALUES (?, ?, 'pinned')", (r.keyid, r.public_bytes()))

    def key(self, db: sqlite3.Connection, keyid: str) -> KeyRecord | None:
        """The record of ``keyid``: remembered, or fetched from the vendor's site once (None: unknown)."""
        if not keyid:
            return None
        if keyid in self.keys:
            return self.keys[keyid]
        row = db.execute("SELECT record FROM keys WHERE keyid = ?", (keyid,)).fetchone()
        if row is None:
            data = self.fetch_key(keyid)  # None: not published; asked again on the next run
            if data is not None:
                db.execute("INSERT OR REPLACE INTO keys VALUES (?, ?, 'site')", (keyid, data))
            row = (data,)
        record = None
        if row[0] is not None:
            try:
                record = KeyRecord.from_bytes(bytes(row[0]), keyid=keyid)
            except Error:
                record = None
        self.keys[keyid] = record
        return record

    def _verified(self, db: sqlite3.Connection, f: Facts, record: KeyRecord) -> bool:
        """Whether ``record``'s key signed the entry; an entry naming it that overt's strict parser refuses,
        or whose signature by it does not verify, is alerted (``forged-entry``, saying which)."""
        assert f.entry is not None
        try:
            envelope, _ = envelope_statement(f.entry)
        except FormatError as e:
            why = f"overt's strict parser refuses it ({e}), so no signature over it is checked"
        else:
            if signed_by(envelope, named_keys(envelope, [record.key])):
                return True
            why = "its signature does not verify"
        self.alert(
            db,
            "forged-entry",
            f.log_index,
            f"key {record.keyid[:16]}",
            f"a {f.kind} entry names key {record.keyid[:16]} ({record.role.value}, {record.jurisdiction}) but "
            f"{why}: it counts for nothing",
        )
        return False

    # --- auditors' verdicts ---------------------------------------------------------------------------

    def forged_verdict(self, db: sqlite3.Connection, index: int, key: Key, why: str) -> None:
        """A VSA at ``index`` names trusted auditor ``key`` but is not signed by it (``why``)."""
        self.alert(
            db,
            "forged-entry",
            index,
            f"key {key.keyid[:16]}",
            f"a vsa entry names trusted auditor key {key.keyid[:16]} but {why}: it counts for nothing",
        )

    def verdict_signers(
        self, db: sqlite3.Connection, index: int, entry: bytes, keyids: Sequence[str]
    ) -> list[Key]:
        """The trusted auditor keys that signed the VSA ``entry`` at ``index``; each trusted key its signatures
        name but that did not sign it is alerted (``forged-entry``, saying why)."""
        named = [k for k in self.auditors if k.keyid in keyids]
        try:
            envelope, _ = envelope_statement(entry)
        except FormatError as e:
            for key in named:
                self.forged_verdict(
                    db,
                    index,
                    key,
                    f"overt's strict parser refuses it ({e}), so no signature over it is checked",
                )
            return []
        signers = signed_by(envelope, named_keys(envelope, self.auditors))
        for key in named:
            if all(s.keyid != key.keyid for s in signers):
                self.forged_verdict(db, index, key, "its signature does not verify")
        return signers

    def _failed_verdict(self, db: sqlite3.Connection, f: Facts) -> None:
        """A FAILED VSA naming a trusted auditor key: ``verdict-failed`` once its signature verified, about
        the build it judged (the provenance its ``inputAttestations`` name) whether or not it is released."""
        assert f.entry is not None
        signers = self.verdict_signers(db, f.log_index, f.entry, f.keyids)
        identities = [key_identity(k).hex() for k in signers]
        db.execute("UPDATE vsa SET verified = ? WHERE idx = ?", (json.dumps(identities), f.log_index))
        if not signers:
            return
        statement = envelope_statement(f.entry)[1]
        try:
            inputs = VerificationSummary.from_statement(statement).input_attestations
            named = [str(a.digest.get("sha256")) for a in inputs if a.digest.get("sha256")]
            build = f"the build of provenance {', '.join(n[:16] for n in named)}" if named else "a build"
        except FormatError as e:
            build = f"a build (its VSA predicate is malformed: {e})"
        keys = ", ".join(k.keyid[:16] for k in signers)
        for name, sha in f.subjects:
            self.alert(
                db,
                "verdict-failed",
                f.log_index,
                f"{json.dumps(name)[:120]} (sha256 {sha[:16]})",
                f"trusted auditor key {keys} FAILED {build}: subject {json.dumps(name)[:120]} sha256 {sha}",
                distinct=sha,
            )

    def alert(
        self,
        db: sqlite3.Connection,
        kind: str,
        index: int | None,
        subject: str,
        message: str,
        *,
        distinct: str = "",
    ) -> None:
        self.state.alert(
            db, kind=kind, index=index, subject=subject, message=message, now=self.stamp, distinct=distinct
        )

    # --- entries, in log order ----------------------------------------------------------------------

    def judge(self, db: sqlite3.Connection, bundle: BundleFacts) -> None:
        """Store a bundle's VSA and tuf-metadata rows, and judge its entries in log order."""
        db.executemany("INSERT OR REPLACE INTO vsa VALUES (?, ?, ?, ?, ?, ?, ?)", bundle.vsa)
        db.executemany("INSERT OR REPLACE INTO tuf VALUES (?, ?, ?, ?, ?, ?, ?)", bundle.tuf)
        for item in bundle.judged:
            if isinstance(item, Facts):
                self._entry(db, item)
            else:
                self._count_signers(db, item)

    def _count_signers(self, db: sqlite3.Connection, counts: SignerCounts) -> None:
        """Entries judged by their signers only: those by no key this monitor knows are counted."""
        for (keyids, known_kind), n in counts.items():
            records = [self.key(db, k) for k in keyids]
            if known_kind and all(r is None for r in records) and not self.known.intersection(keyids):
                self.unknown_signers += n

    def _entry(self, db: sqlite3.Connection, f: Facts) -> None:
        if f.kind == VSA and f.detail.get("result") == FAILED:
            self._failed_verdict(db, f)
        signers = [r for k in dict.fromkeys(f.keyids) if (r := self.key(db, k)) is not None]
        if not signers:
            known = bool(self.known.intersection(f.keyids))
            self.unknown_signers += f.kind != OTHER and bool(f.keyids) and not known
            if f.kind == ROTATION:
                self._rotation(db, f)
            return
        if f.claims:
            for record in signers:
                self._jurisdiction(db, f, record)
        if f.kind == ROTATION:
            self._rotation(db, f)
        elif f.kind == REGISTRY:
            self._registry(db, f, signers)
        elif f.kind == PROVENANCE:
            self._provenance(db, f, signers)
        elif f.kind in (AUDIT, WAIVER):
            self._avdb(db, f, signers)

    def _jurisdiction(self, db: sqlite3.Connection, f: Facts, record: KeyRecord) -> None:
        foreign = [(where, value) for where, value in f.claims if value != record.jurisdiction]
        if not foreign or not self._verified(db, f, record):
            return
        where, value = foreign[0]
        self.alert(
            db,
            "jurisdiction",
            f.log_index,
            f"key {record.keyid[:16]}",
            f"key {record.keyid[:16]} of {record.jurisdiction} signed a {f.kind} statement naming jurisdiction "
            f"{json.dumps(value)} ({where})",
        )

    def _rotation(self, db: sqlite3.Connection, f: Facts) -> None:
        assert f.entry is not None
        old_id = str(f.detail.get("old") or "")
        old = self.key(db, old_id)
        subject = f"rotation from key {old_id[:16]}"
        if old is None:
            self.alert(
                db,
                "rotation-unsigned",
                f.log_index,
                subject,
                f"it names old key {old_id[:16] or '(none)'}, "
                "which is neither pinned, published on the vendor's site nor introduced by a rotation",
            )
            return
        try:
            envelope, statement = envelope_statement(f.entry)
        except FormatError as e:
            self.alert(
                db,
                "rotation-unsigned",
                f.log_index,
                subject,
                f"overt's strict parser refuses the statement ({e}): it introduces no key",
            )
            return
        if not signed_by(envelope, [old.key]):
            self.alert(
                db,
                "rotation-unsigned",
                f.log_index,
                subject,
                f"the statement introducing a new {old.role.value} key is not signed by the old key",
            )
            return
        try:
            new = introduced_key(statement, old)
        except (VerificationError, FormatError) as e:
            self.alert(
                db, "rotation-unsigned", f.log_index, subject, f"not a valid rotation by the old key: {e}"
            )
            return
        db.execute(
            "INSERT OR REPLACE INTO keys VALUES (?, ?, ?)",
            (new.keyid, new.public_bytes(), f"rotation {f.log_index}"),
        )
        self.keys[new.keyid] = new

    def _registry(self, db: sqlite3.Connection, f: Facts, signers: Sequence[KeyRecord]) -> None:
        release = [r for r in signers if r.role is Role.RELEASE and self._verified(db, f, r)]
        if not release or f.entry is None:
            return
        try:
            registry = BuilderRegistry.from_statement(envelope_statement(f.entry)[1])
        except (VerificationError, FormatError):
            return
        if registry.version > self.builders()["version"]:
            self._builders = {"version": registry.version, "builders": registry.mapping()}
            self.state.put(db, "registry", self._builders)

    def _provenance(self, db: sqlite3.Connection, f: Facts, signers: Sequence[KeyRecord]) -> None:
        registry = self.builders()
        builder = f.detail.get("builder")
        registered = registry.get("builders", {}).get(builder) if isinstance(builder, str) else None
        for record in signers:
            if registered is None:
                why = (
                    f"is not in the builder registry (version {registry['version']}) at this point of the log"
                )
            elif registered != record.jurisdiction:
                why = f"is registered to {registered}, outside the key's jurisdiction {record.jurisdiction}"
            else:
                continue
            if self._verified(db, f, record):
                self.alert(
                    db,
                    "builder-registry",
                    f.log_index,
                    f"builder {json.dumps(builder)[:120]}",
                    f"key {record.keyid[:16]} signed provenance whose builder {json.dumps(builder)[:120]} {why}",
                )
        if "database" in f.detail and f.subjects:
            self._avdb_version(db, f, signers)

    def _avdb_version(self, db: sqlite3.Connection, f: Facts, signers: Sequence[KeyRecord]) -> None:
        """One artifact per (database, version), both read as the release check reads them
        (:func:`~overt.auditor.monitor_repo.avdb_version`); a name or version no release could have is an
        alert of its own, never another version."""
        raw_name, raw_version = f.detail.get("database"), f.detail.get("version")
        database, number = avdb_name(raw_name), avdb_version(raw_version)
        if database is None or number is None:
            if any(self._verified(db, f, r) for r in signers):
                self.alert(
                    db,
                    "malformed-version",
                    f.log_index,
                    f"avdb {json.dumps(raw_name)[:80]} {json.dumps(raw_version)[:40]}",
                    f"provenance of an AV database names database {json.dumps(raw_name)[:80]} version "
                    f"{json.dumps(raw_version)[:40]}, which no 'overt avdb release' could have (a database name "
                    "of letters, digits, '-', '_' and '.', and a positive integer version)",
                )
            return
        version = str(number)
        artifact = f.subjects[0][1]
        row = db.execute(
            "SELECT artifact, idx FROM avdb WHERE database = ? AND version = ?", (database, version)
        ).fetchone()
        if row is None:
            if any(self._verified(db, f, r) for r in signers):
                db.execute("INSERT INTO avdb VALUES (?, ?, ?, ?)", (database, version, artifact, f.log_index))
        elif row[0] != artifact and any(self._verified(db, f, r) for r in signers):
            self.alert(
                db,
                "duplicate-version",
                f.log_index,
                f"avdb {database} {version}",
                f"provenance for database {database} version {version} names artifact {artifact[:16]}; the "
                f"provenance at log index {row[1]} named {row[0][:16]}",
                distinct=artifact,
            )

    def _avdb(self, db: sqlite3.Connection, f: Facts, signers: Sequence[KeyRecord]) -> None:
        database = f.detail.get("database")
        if f.kind == AUDIT and not f.detail.get("blocking"):
            return
        if not any(self._verified(db, f, r) for r in signers):
            return
        if f.kind == AUDIT:
            self.alert(
                db,
                "avdb-findings",
                f.log_index,
                f"avdb {database}",
                f"the audit report of database {database}'s rules has {f.detail['blocking']} blocking "
                f"finding(s) of {f.detail['findings']}",
            )
        else:
            self.alert(
                db,
                "avdb-waiver",
                f.log_index,
                f"avdb {database} finding {f.detail.get('finding')}",
                f"finding {f.detail.get('finding')} of database {database} is waived: {f.detail.get('reason')}",
            )
