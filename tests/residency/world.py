"""A residency world for the router, ingest and telemetry-server tests: a CH conveyor home with registry v1,
jurisdictions CH and BR set up (stores and access logs), and tenants from DE (CH-homed) and BR with tokens."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from overt.home import Home
from overt.residency.accesslog import AccessEntry, ensure_access_log
from overt.residency.config import JurisdictionConfig
from overt.residency.provision import add_store
from overt.residency.registry import SELF
from overt.residency.registry_store import RegistryIssuer
from overt.residency.tenants import Tenant, open_directory
from overt.tlog.client import LogClient, directory_fetcher


def admin_pem() -> bytes:
    return (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )


@dataclass
class World:
    home: Home
    tenants: dict[str, Tenant]  # by name
    tokens: dict[str, str]  # by tenant name

    def token(self, name: str) -> str:
        return self.tokens[name]


def make_world(
    conveyor: Home,
    *,
    tenants: tuple[tuple[str, str], ...] = (("acme", "DE"), ("samba", "BR")),
    configs: dict[str, JurisdictionConfig] | None = None,
) -> World:
    RegistryIssuer.of_home(conveyor).init(default=SELF, countries={})
    for j, config in (configs or {"CH": JurisdictionConfig(), "BR": JurisdictionConfig()}).items():
        add_store(conveyor, j, config)
    directory = open_directory(conveyor)
    made, tokens = {}, {}
    try:
        for name, country in tenants:
            tenant = directory.create_tenant(name, country, admin_pem()).tenant
            made[name] = tenant
            tokens[name] = directory.create_token(tenant.id).token
    finally:
        directory.close()
    return World(home=conveyor, tenants=made, tokens=tokens)


def batch(batch_id: str, n: int = 3, *, day: str = "2026-12-01", salt: str = "", rules: int = 2) -> bytes:
    events = [
        {
            "time": f"{day}T10:{i % 60:02d}:{(i // 60) % 60:02d}Z",
            "file_sha256": hashlib.sha256(f"{batch_id}{salt}{i}".encode()).hexdigest(),
            "rule_id": f"rule-{i % rules}",
            "verdict": ("malicious", "suspicious", "clean")[i % 3],
            "database": "overt-avdb",
            "database_version": 7,
        }
        for i in range(n)
    ]
    return json.dumps({"batch_id": batch_id, "endpoint": "host-1", "events": events}).encode()


def access_entries(home: Home, j: str) -> list[AccessEntry]:
    log = ensure_access_log(Home(home.path), j)
    client = LogClient(directory_fetcher(log.paths.public), log.policy())
    size = client.update().checkpoint.checkpoint.tree_size
    return [AccessEntry.from_bytes(e) for e in client.entries(size)] if size else []


def rows_in_sqlite(root: Path) -> int:
    import sqlite3

    db = sqlite3.connect(root / "store.db")
    try:
        return int(db.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        db.close()


def send(url: str, token: str, raw: bytes) -> httpx.Response:
    """POST a batch to ``url``/v1/telemetry as an endpoint does."""
    return httpx.post(
        f"{url}/v1/telemetry",
        content=raw,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=60,
    )
