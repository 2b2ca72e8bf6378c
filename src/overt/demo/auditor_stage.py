"""Demo stage "independent auditors": two auditors, each with its own home, keys, jurisdiction and build
directory, rebuild every build the log holds from the vendor's public site alone and log their verdicts.

The conveyor's log server (:mod:`overt.server.log`) serves ``public/`` and takes entries on loopback while the
stage runs. Each auditor is made as an independent organisation makes one (``overt auditor init``): from the log
policy the customer pinned and the vendor's builder public key files, and nothing else of the conveyor's home;
its home adopts the witness it already runs for the log (:func:`overt.demo.context.running_witnesses`). Then
one rebuild pass (``overt auditor rebuild --once``, :func:`overt.auditor.rebuild_loop.rebuild_pass`) per auditor:
the sample product, if the build stage could build it, and AV databases v1 and v2. Each GOOD rebuild is a
PASSED SLSA VSA, signed by the auditor's key and logged; the distribution stage publishes those verdicts beside
the releases and the endpoint requires both (:mod:`overt.demo.distribute_stage`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from overt.auditor.home import AuditorHome
from overt.auditor.rebuild import RebuildSettings
from overt.auditor.rebuild_loop import Pass, rebuild_pass
from overt.auditor.verdicts import GOOD
from overt.demo.claims import Claim, Promise, Stage, Status
from overt.demo.context import WITNESS_NAMES, DemoContext, auditor_name, auditor_root
from overt.errors import VerificationError
from overt.keys.registry import Role
from overt.server.runner import BackgroundServer, free_port

JURISDICTIONS = ("DE", "FR")  # where the two auditors sign: neither is the vendor's
SOURCE = Promise.BUILT_FROM_AUDITED_SOURCE


def auditor_homes(ctx: DemoContext) -> tuple[AuditorHome, ...]:
    """The auditor homes this stage made, read back (the distribution stage uses their keys and verdicts)."""
    return tuple(AuditorHome.open(auditor_root(ctx.root, n)) for n in range(1, len(WITNESS_NAMES) + 1))


@contextmanager
def _log_server(ctx: DemoContext) -> Iterator[str]:
    """The conveyor's log server on loopback: ``public/`` as static files and ``POST /add``; its URL."""
    from overt.server.log import create_app  # FastAPI, which the rest of the demo does not need

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with BackgroundServer(create_app(ctx.home, url=url), port=port):
        yield url


def _handed_over(ctx: DemoContext) -> list[Path]:
    """The vendor's builder public key files, as it hands them to an auditor out of band."""
    records = ctx.home.registry.records()
    return [ctx.public_key(r.keyid) for r in records if r.role is Role.BUILDER]


def _make_auditor(ctx: DemoContext, n: int, site: str) -> AuditorHome:
    return AuditorHome.init(
        auditor_root(ctx.root, n),
        name=auditor_name(n),
        log_url=f"{site}/log",
        log_policy=ctx.pinned_policy.read_bytes(),
        vendor_keys=_handed_over(ctx),
        jurisdiction=JURISDICTIONS[n - 1],
    )


def _rebuilt(ctx: DemoContext, home: AuditorHome, site: str) -> Pass:
    """One pass of ``overt auditor rebuild --once``, building in a scratch directory of the auditor's own."""
    with tempfile.TemporaryDirectory(prefix=f"overt-demo-{home.paths.root.name}-") as scratch:
        done = rebuild_pass(home, RebuildSettings.of(f"{site}/log", workdir=scratch))
    bad = [o for o in done.outcomes if o.verdict != GOOD or not o.final or o.vsa_index is None]
    if bad or done.errors or not done.outcomes:
        why = "; ".join(f"{o.artifact}: {o.verdict} ({o.reason})" for o in bad) or "nothing rebuilt"
        raise VerificationError(f"auditor {home.config.auditor.name} did not rebuild every build: {why}")
    return done


def _claim(ctx: DemoContext, home: AuditorHome, done: Pass, others: Sequence[str]) -> Claim:
    name, where = home.config.auditor.name, home.config.auditor.jurisdiction
    first = done.outcomes[0]
    assert first.vsa_path is not None and first.vsa_index is not None
    built = "; ".join(
        f"{o.artifact} (provenance entry {o.job.log_index}, PASSED VSA entry {o.vsa_index})"
        for o in done.outcomes
    )
    return Claim(
        id=f"auditors.{home.paths.root.name}-rebuilt",
        promise=SOURCE,
        status=Status.PROVED,
        check=f"auditor {name}, in its own home ({ctx.rel(home.paths.root)}: its own auditor key "
        f"{home.key.keyid[:16]} in {where}, its own witness, and only the log policy and the vendor's builder "
        f"keys pinned), followed the log over HTTP, verified each checkpoint under the witness quorum, and "
        f"rebuilt every provenance the vendor's builder logged from the escrow on the vendor's site alone, "
        f"in its own build directory, bit for bit: {built}. Each verdict is signed by its key and logged. "
        f"It shares nothing with {' or '.join(others)} but the public log",
        evidence=ctx.rel(first.vsa_path),
        recheck=ctx.log_verify("--entry", first.vsa_path, "--index", first.vsa_index),
        facts={
            "auditor": name,
            "jurisdiction": where,
            "key": home.key.keyid,
            "verdicts": [o.to_dict() for o in done.outcomes],
        },
    )


def auditor_stage(ctx: DemoContext) -> Stage:
    with _log_server(ctx) as site:
        homes = [_make_auditor(ctx, n, site) for n in range(1, len(WITNESS_NAMES) + 1)]
        passes = [_rebuilt(ctx, home, site) for home in homes]
    names = [h.config.auditor.name for h in homes]
    claims = tuple(
        _claim(ctx, home, done, [*(x for x in names if x != home.config.auditor.name), "the vendor"])
        for home, done in zip(homes, passes, strict=True)
    )
    return Stage(
        name="auditors",
        title="independent auditors",
        setup=f"the conveyor's log server serves its public site on loopback; auditors {' and '.join(names)}, "
        "whose witnesses already cosign the log, each rebuild what the log holds and log their verdicts",
        claims=claims,
    )
