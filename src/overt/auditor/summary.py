"""The auditor's SLSA VSA on one provenance: its statement, its signature, and the files it publishes.

The statement (``https://slsa.dev/verification_summary/v1``, :class:`overt.attest.vsa.VerificationSummary`):

- ``subject``: the provenance's subjects, each by name and sha256 only: what was compared (any other digest
  the vendor gave a subject was not checked, so the VSA does not repeat it);
- ``verifier.id``: ``https://<auditor name>`` (the name the home was made with, as it is), version overt's;
- ``resourceUri``: where a reader fetches the artifact judged on the vendor's site;
- ``policy``: the rebuild policy applied: ``uri`` the log followed, ``digest`` the SHA-256 of the pinned
  log policy, ``annotations`` the rule and the pinned vendor keys (keyid and SHA-256 of each pinned file);
- ``inputAttestations``: the provenance (``digest`` the SHA-256 of its envelope as logged, ``annotations``
  ``logIndex``), then, on a mismatch, diffoscope's reports (``uri`` relative to the auditor's ``public/``,
  ``digest`` the SHA-256 of the published file);
- ``verificationResult``: PASSED for GOOD, FAILED for BAD and for a FAIL past its retry limit;
  ``verifiedLevels``: :data:`REPRODUCED` when PASSED, none when FAILED;
- ``rebuild`` (a predicate field of overt's, beside the VSA's own): ``verdict`` GOOD/BAD/FAIL, ``reason``,
  ``attempts``, ``differing``, and ``environment`` (recorded and own digests, ``same``, the text:
  :meth:`overt.auditor.reproduce.EnvironmentCheck.to_dict`; ``recorded`` and ``same`` null when the
  provenance recorded no environment, so none was compared).

It is judged as any signature an overt key makes (:func:`overt.keys.jurisdiction.check`, under the auditor's
jurisdiction: a statement naming another is refused), signed by the auditor's own key through its signer URI
(:func:`overt.keys.signers.load_signer`) and checked against the public half before it leaves. Submitting it
is :mod:`overt.auditor.rebuild`'s; the files here are written once the log has answered:
``public/vsa/<provenance-sha256>.dsse.json`` (the envelope as logged, what ``overt tuf add-verdict`` takes) and
``.tlog-proof`` beside it. Reports go to ``public/reports/<provenance-sha256>/`` before the VSA is signed, each
file written once: a second writer (a retry, another worker) finds it there and names those same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from overt import __version__
from overt.atomic import atomic_write
from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, sign_envelope
from overt.attest.statement import ResourceDescriptor, Statement, format_timestamp
from overt.attest.verify import verify_envelope
from overt.attest.vsa import FAILED, PASSED, VSA_V1, VerificationSummary, VsaVerifier
from overt.auditor.home import AuditorHome
from overt.auditor.reproduce import LoggedProvenance, Reproduction
from overt.auditor.verdicts import GOOD
from overt.build.compare import REPORT_HTML, REPORT_TEXT
from overt.keys.jurisdiction import SigningPolicy, check
from overt.keys.signers import HsmConfig, load_signer
from overt.tlog.proof import TlogProof

REPRODUCED = "OVERT_REPRODUCED_FROM_ESCROW"
RULE = "every subject rebuilt bit for bit from the escrowed inputs the provenance resolves"
PROOF_SUFFIX = ".tlog-proof"


def policy_descriptor(home: AuditorHome, log_url: str) -> ResourceDescriptor:
    """What this auditor applied: the log it follows, the policy it pinned for it, the vendor keys it pinned."""
    return ResourceDescriptor(
        name="overt-rebuild/v1",
        uri=log_url,
        digest={"sha256": home.config.log.policy_sha256},
        annotations={
            "rule": RULE,
            "vendorKeys": [{"keyid": k.record.keyid, "sha256": k.sha256} for k in home.vendor_keys],
        },
    )


def verdict_statement(
    home: AuditorHome,
    prov: LoggedProvenance,
    found: Reproduction,
    *,
    log_url: str,
    attempts: int,
    reports: Sequence[ResourceDescriptor],
    now: datetime,
) -> Statement:
    """The VSA statement on ``prov`` for what was ``found`` (see the module doc)."""
    passed = found.verdict == GOOD
    summary = VerificationSummary(
        verifier=VsaVerifier(id=f"https://{home.config.auditor.name}", version={"overt": __version__}),
        time_verified=format_timestamp(now),
        resource_uri=found.resource_uri,
        policy=policy_descriptor(home, log_url),
        verification_result=PASSED if passed else FAILED,
        verified_levels=(REPRODUCED,) if passed else (),
        input_attestations=(
            ResourceDescriptor(
                name="provenance",
                digest={"sha256": prov.sha256},
                media_type="application/vnd.dsse.envelope.v1+json",
                annotations={"logIndex": prov.index},
            ),
            *reports,
        ),
    )
    predicate = summary.to_dict() | {"rebuild": _rebuild_field(found, attempts, reports)}
    subject = tuple(
        ResourceDescriptor(name=s.name, digest={"sha256": s.digest["sha256"]}) for s in prov.subjects
    )  # read_provenance skips a provenance with a subject lacking a sha256
    return Statement(subject=subject, predicate_type=VSA_V1, predicate=predicate)


def _rebuild_field(
    found: Reproduction, attempts: int, reports: Sequence[ResourceDescriptor]
) -> dict[str, Any]:
    env = found.environment
    return {
        "verdict": found.verdict,
        "reason": found.reason,
        "attempts": attempts,
        "differing": list(found.differing),
        "environment": None if env is None else env.to_dict(),
        "reports": [r.uri for r in reports],
    }


def sign_verdict(home: AuditorHome, statement: Statement, *, now: datetime) -> bytes:
    """The DSSE envelope of ``statement`` signed by the auditor's key, as it is logged.

    Raises:
        PolicyError: the auditor's key may not sign it (expired, or the statement names another jurisdiction).
        ConfigError: the key cannot be loaded.
    """
    record = home.key
    check(record, statement, SigningPolicy(jurisdiction=home.config.auditor.jurisdiction), now=now)
    signer = load_signer(record.uri, record.key, keys_dir=home.paths.keys, hsm=HsmConfig())
    envelope = sign_envelope(statement.to_bytes(), PAYLOAD_TYPE_IN_TOTO, [signer])
    verify_envelope(envelope, [record.key], 1)  # a signer that returns a bad signature must not reach the log
    return envelope.to_bytes()


def publish_reports(
    home: AuditorHome, prov: LoggedProvenance, found: Reproduction
) -> tuple[ResourceDescriptor, ...]:
    """diffoscope's report files under ``public/reports/<provenance-sha256>/``, each written once; their
    descriptors as the VSA names them."""
    report = found.report
    if report is None:
        return ()
    out = []
    directory = home.paths.reports(prov.sha256)
    for src, name, media in (
        (report.text_path, REPORT_TEXT, "text/plain"),
        (report.html_path, REPORT_HTML, "text/html"),
    ):
        if src is None:
            continue
        target = directory / name
        data = _write_once(target, src.read_bytes())
        out.append(
            ResourceDescriptor(
                name=name,
                uri=target.relative_to(home.paths.public).as_posix(),
                digest={"sha256": hashlib.sha256(data).hexdigest()},
                media_type=media,
            )
        )
    return tuple(out)


def _write_once(target: Path, data: bytes) -> bytes:
    """Write ``target`` unless it exists; the bytes it holds afterwards."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, target)  # atomic, and never replaces what another writer published
    finally:
        os.unlink(tmp)
    return target.read_bytes()


def publish_vsa(home: AuditorHome, provenance_sha256: str, envelope: bytes, proof: TlogProof) -> Path:
    """The logged VSA and its tlog-proof under ``public/vsa/``; the envelope's path."""
    path = home.paths.vsa(provenance_sha256)
    atomic_write(path, envelope)
    atomic_write(path.with_name(path.name.removesuffix(".dsse.json") + PROOF_SUFFIX), proof.to_bytes())
    return path
