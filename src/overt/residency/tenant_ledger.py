"""What the main log says of each tenant, checked against what the tenant directory says.

A tenant's home is publicly committed: its creation and every move are statements in the main log
(``residency-tenant/v1``, :mod:`overt.residency.tenants`), signed by a release key of the home. The directory
(``<home>/residency/directory.db``) is only the vendor's working copy. Whoever can write that file could
otherwise re-home a tenant with one SQL ``UPDATE``, and telemetry would follow without a word. So every
tenant the directory hands out is first compared with the newest record the log holds of it
(:meth:`TenantLedger.check`):

- equal (home, registry version, country, admin keyid): the row is what the log says;
- the newest record is a move from the row's home that the row does not show yet, and the tenant is
  migrating: a migration crashed between logging the move and committing it. The tenant is frozen (no
  telemetry is taken, no staff access allowed) until ``overt residency migrate`` resumes and records it;
- anything else (no record, another home, another version, a move the log never held, a move taken back):
  :class:`TenantRecordError`, naming both. Nothing is routed, read or migrated for that tenant.

The ledger scans the log's entries once, then only what was appended since. Only entries whose bytes carry
the statement type's base64 are parsed, and only those a trusted release key signed count
(:mod:`overt.keys.registry_scan` explains both, and the check of each bundle against its tile). A process
looks again at the log at most every ``refresh`` seconds, and at once when a row does not match, so a move
logged by another process is seen at its next use, and a move taken back in the directory within a second.
If the log's tree no longer extends what was scanned (its database restored), everything is scanned again.

What it cannot see: an operator who also controls the release key can log a move of their own. That move is
public, in the log, for the customer and any monitor to read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from securesystemslib.signer import Key

from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope
from overt.attest.statement import Statement
from overt.attest.verify import verify_statement
from overt.errors import FormatError, StorageError, VerificationError
from overt.keys.jurisdiction import RESIDENCY_TENANT_V1
from overt.keys.registry_scan import base64_forms, logged_entries
from overt.tlog.merkle import EMPTY_ROOT, hash_range

if TYPE_CHECKING:
    from overt.residency.tenants import Tenant
    from overt.tlog.log import LocalLog

CREATED, MOVED = "created", "moved"
_MARKERS = base64_forms(RESIDENCY_TENANT_V1.rsplit("/attestation/", 1)[-1].encode())
REFRESH = 1.0


class TenantRecordError(StorageError):
    """The directory's record of a tenant is not what the main log says of it: the home's state was
    changed outside overt. Exit 1 (the evidence says no); over HTTP, 503 (nothing was taken)."""

    exit_code: ClassVar[int] = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedTenant:
    """One tenant statement of the main log, signed by a trusted release key."""

    index: int
    event: str
    tenant: str
    country: str
    home: str
    registry_version: int
    admin_keyid: str
    moved_from: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "log_index": self.index,
            "event": self.event,
            "tenant": self.tenant,
            "country": self.country,
            "home": self.home,
            "registry_version": self.registry_version,
            "admin_keyid": self.admin_keyid,
            "from": self.moved_from or None,
        }


def logged_tenant(index: int, entry: bytes, keys: Sequence[Key]) -> LoggedTenant | None:
    """The tenant statement ``entry`` carries if one of ``keys`` signed it, else None."""
    if not keys or not any(marker in entry for marker in _MARKERS):
        return None
    try:
        envelope = Envelope.from_bytes(entry)
        if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO or not envelope.signatures:
            return None
        if Statement.from_bytes(envelope.payload).predicate_type != RESIDENCY_TENANT_V1:
            return None
        p = verify_statement(envelope, keys).predicate
        found = LoggedTenant(
            index=index,
            event=_text(p, "event"),
            tenant=_text(p, "tenant"),
            country=_text(p, "country"),
            home=_text(p, "home"),
            registry_version=_version(p.get("registryVersion")),
            admin_keyid=_text(p, "adminKeyid"),
            moved_from=str(p.get("from", "")),
        )
    except (FormatError, VerificationError, ValueError):
        return None  # not a tenant statement this home's release keys signed: it counts for nothing
    return found if found.event in (CREATED, MOVED) else None


def _text(p: Mapping[str, Any], name: str) -> str:
    value = p.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(name)
    return value


def _version(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("registryVersion")
    return value


def _matches(tenant: Tenant, logged: LoggedTenant) -> bool:
    return (logged.home, logged.registry_version, logged.country, logged.admin_keyid) == (
        tenant.jurisdiction,
        tenant.registry_version,
        tenant.country,
        tenant.admin_keyid,
    )


def pending_move(tenant: Tenant, logged: LoggedTenant | None) -> bool:
    """``logged`` is a move of the migrating ``tenant`` out of its recorded home that the directory has not
    recorded yet (a crash between logging it and committing it)."""
    from overt.residency.tenants import MIGRATING

    return (
        logged is not None
        and logged.event == MOVED
        and tenant.status == MIGRATING
        and logged.moved_from == tenant.jurisdiction
        and logged.registry_version > tenant.registry_version
        and (logged.country, logged.admin_keyid) == (tenant.country, tenant.admin_keyid)
    )


class TenantLedger:
    """The newest logged statement of each tenant, from the log ``open_log`` opens (for reading), signed
    by one of ``keys()``."""

    def __init__(
        self,
        open_log: Callable[[], LocalLog],
        keys: Callable[[], Sequence[Key]],
        *,
        refresh: float = REFRESH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._open_log = open_log
        self._keys = keys
        self._refresh = refresh
        self._clock = clock
        self._lock = threading.Lock()
        self._newest: dict[str, LoggedTenant] = {}
        self._size, self._root = 0, EMPTY_ROOT
        self._checked: float | None = None
        self.published_size = 0  # the size of the log's published checkpoint when it was last read

    def newest(self, tenant_id: str, *, fresh: bool = False) -> LoggedTenant | None:
        """The newest logged statement of ``tenant_id``, the log read again if ``fresh`` or if it was last
        read more than ``refresh`` seconds ago.

        Raises:
            StorageError: the log cannot be read, or a log file is damaged.
        """
        with self._lock:
            now = self._clock()
            if fresh or self._checked is None or now - self._checked >= self._refresh:
                self._update()
                self._checked = now
            return self._newest.get(tenant_id)

    def check(self, tenant: Tenant) -> Tenant:
        """``tenant`` if the log's newest record of it agrees (or is a move it has yet to record, see the
        module docstring); else :class:`TenantRecordError`."""
        logged = self.newest(tenant.id)
        if logged is not None and (_matches(tenant, logged) or pending_move(tenant, logged)):
            return tenant
        logged = self.newest(tenant.id, fresh=True)  # another process may have just logged a move
        if logged is not None and (_matches(tenant, logged) or pending_move(tenant, logged)):
            return tenant
        raise _mismatch(tenant, logged)

    def _update(self) -> None:
        log = self._open_log()
        try:
            state = log.tiles.state
            reader = log.tiles.reader()
            if state.tree_size < self._size or (
                self._size and hash_range(0, self._size, reader.node) != self._root
            ):
                self._newest, self._size = {}, 0  # the tree does not extend what was scanned: again
            keys = self._keys()
            for index, entry in logged_entries(log, self._size, state.tree_size):
                found = logged_tenant(index, entry, keys)
                if found is not None:
                    self._newest[found.tenant] = found
            self._size, self._root = state.tree_size, state.root_hash
            published = log.published()
            self.published_size = 0 if published is None else published.checkpoint.tree_size
        finally:
            log.close()


def _mismatch(tenant: Tenant, logged: LoggedTenant | None) -> TenantRecordError:
    said = (
        f"home {tenant.jurisdiction} by registry v{tenant.registry_version}, country {tenant.country}, "
        f"admin key {tenant.admin_keyid[:16]}"
    )
    if logged is None:
        found = "the main log holds no record of this tenant signed by a release key of this home"
    else:
        found = (
            f"the main log's newest record of it (entry {logged.index}, {logged.event}) says home "
            f"{logged.home} by registry v{logged.registry_version}, country {logged.country}, admin key "
            f"{logged.admin_keyid[:16]}"
        )
    return TenantRecordError(
        f"tenant {tenant.id}: the tenant directory says {said}, but {found}. The directory was changed "
        "outside overt (a home changes only by a logged migration); nothing is routed, read or migrated for "
        "this tenant until the directory agrees with the log again",
        tenant=tenant.id,
        directory_home=tenant.jurisdiction,
        logged_home=None if logged is None else logged.home,
        logged_index=None if logged is None else logged.index,
    )
