"""The vendor's side of an auditor's init: a log policy and public key files, made with fixed keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner

from overt.keys.registry import KeyRecord, Role
from overt.tlog.cosignature import CosignatureSigner
from overt.tlog.note import Ed25519Signer
from overt.tlog.policy import Policy, PolicyLog, PolicyWitness

LOG_ORIGIN = "vendor.example/log"
FIXED = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Vendor:
    """What a vendor hands an auditor out of band: its log's policy and its public key files."""

    log_vkey: str
    policy: Path
    keys: tuple[Path, ...]


def key_file(path: Path, role: Role, jurisdiction: str) -> Path:
    record = KeyRecord.create(
        CryptoSigner.generate_ed25519().public_key,
        role=role,
        jurisdiction=jurisdiction,
        valid_from=FIXED,
        valid_until=None,
        uri="",
    )
    path.write_bytes(record.public_bytes())
    return path


@pytest.fixture
def vendor(tmp_path: Path) -> Vendor:
    log = Ed25519Signer.create(LOG_ORIGIN, bytes(range(32)))
    witness = CosignatureSigner.create("witness.example/w1", bytes(range(1, 33)))
    policy = Policy(
        logs=(PolicyLog(verifier=log.verifier(), url="https://vendor.example/log"),),
        witnesses=(PolicyWitness(name="w1", verifier=witness.verifier()),),
        quorum="w1",
    )
    where = tmp_path / "vendor"
    where.mkdir()
    (where / "log.policy").write_bytes(policy.to_bytes())
    keys = (
        key_file(where / "release.json", Role.RELEASE, "CH"),
        key_file(where / "builder.json", Role.BUILDER, "DE"),
    )
    return Vendor(log_vkey=log.verifier().vkey(), policy=where / "log.policy", keys=keys)
