"""Demo stage "the transparency log": statements appended over HTTP and verified as a customer would.

A customer's verifier that trusts only the pinned policy checks the cosigned checkpoint, inclusion from tiles
fetched over HTTP, an offline tlog-proof, the log's growth, a forged checkpoint, and a witness that refuses a
fork. Every claim here supports "nothing signed in secret": a signature the vendor makes is an entry of one
append-only log that witnesses keep honest. The old database backup the recovery stage restores is taken here,
at size 10 (``evidence/backup-overt.db``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx

from overt.demo.claims import Claim, Promise, Stage, Status
from overt.demo.context import DemoContext
from overt.errors import VerificationError
from overt.tlog.checkpoint import Checkpoint, SignedCheckpoint
from overt.tlog.client import LogClient, VerifiedTree, http_fetcher, verify_tlog_proof
from overt.tlog.note import generate_ed25519
from overt.tlog.proof import TlogProof
from overt.tlog.witness import WitnessRefusal

SECRET = Promise.NOTHING_SIGNED_IN_SECRET
ENTRIES = [f"demo statement {i}: release artefact sha256:{i:064x}\n".encode() for i in range(20)]


def backup_path(ctx: DemoContext) -> Path:
    return ctx.evidence / "backup-overt.db"


def _backup_database(ctx: DemoContext) -> None:
    """An online SQLite backup of the log database, as an operator's nightly job would take it."""
    ctx.evidence.mkdir(exist_ok=True)
    with sqlite3.connect(ctx.home.path / "overt.db") as src, sqlite3.connect(backup_path(ctx)) as dst:
        src.backup(dst)


def _append(http: httpx.Client, url: str, entry: bytes) -> dict[str, Any]:
    answer = http.post(f"{url}/add", content=entry)
    body: dict[str, Any] = answer.json()
    if answer.status_code != 200 or "index" not in body:
        raise VerificationError(f"the log refused a demo statement ({answer.status_code}): {body}")
    return body


def _appended(ctx: DemoContext, http: httpx.Client, url: str) -> tuple[list[dict[str, Any]], Claim]:
    answers = [_append(http, url, e) for e in ENTRIES[:10]]
    indices = [a["index"] for a in answers]
    again = _append(http, url, ENTRIES[3])
    if indices != list(range(10)) or again["index"] != 3:
        raise VerificationError(f"appending gave indices {indices}, and statement 3 again {again['index']}")
    entry = ctx.write_evidence("entry-3", ENTRIES[3])
    claim = Claim(
        id="log.one-place-per-statement",
        promise=SECRET,
        status=Status.PROVED,
        check="10 statements appended over the log's HTTP API got indices 0 to 9; sending statement 3 again "
        "returned its first index, 3, and added nothing, so each statement has exactly one place in the log",
        evidence=ctx.rel(entry),
        recheck=ctx.overt("log", "fsck", "--full", "--home", ctx.home.path),
        facts={"indices": indices, "resent_index": again["index"]},
    )
    return answers, claim


def _verified(
    ctx: DemoContext, client: LogClient, answers: list[dict[str, Any]]
) -> tuple[VerifiedTree, list[Claim]]:
    tree = client.update()
    cp = tree.checkpoint.checkpoint
    if cp.tree_size != 10 or tree.previous_size is not None or tree.cosigners != {"w1", "w2"}:
        raise VerificationError(
            f"the first checkpoint is size {cp.tree_size}, cosigned by "
            f"{', '.join(sorted(tree.cosigners)) or 'no witness'}"
        )
    for i in (0, 7, 9):
        client.verify_inclusion(ENTRIES[i], answers[i]["index"], tree.checkpoint)
    entry7 = ctx.write_evidence("entry-7", ENTRIES[7])
    proof = TlogProof.from_bytes(answers[5]["proof"].encode())
    cosigners = verify_tlog_proof(proof, ENTRIES[5], ctx.policy())
    proof_file = ctx.write_evidence("entry-5.tlog-proof", answers[5]["proof"].encode())
    entry5 = ctx.write_evidence("entry-5", ENTRIES[5])
    return tree, [
        Claim(
            id="log.checkpoint-cosigned",
            promise=SECRET,
            status=Status.PROVED,
            check=f"the published checkpoint (size {cp.tree_size}) is signed by the log's key and cosigned by both "
            "independent witnesses, w1 and w2, as the pinned policy requires",
            evidence=ctx.rel(ctx.home.log.paths.public / "checkpoint"),
            recheck=ctx.log_verify("--state", ctx.state_dir),
            facts={"tree_size": cp.tree_size, "cosigners": sorted(tree.cosigners)},
        ),
        Claim(
            id="log.inclusion",
            promise=SECRET,
            status=Status.PROVED,
            check="statements 0, 7 and 9 are in the tree the size-10 checkpoint commits to, checked from log tiles "
            "fetched over HTTP",
            evidence=ctx.rel(entry7),
            recheck=ctx.log_verify("--entry", entry7, "--index", 7),
            facts={"indices": [0, 7, 9]},
        ),
        Claim(
            id="log.offline-proof",
            promise=SECRET,
            status=Status.PROVED,
            check="the proof the log returned with statement 5 verifies offline, without contacting the log: "
            "the log's signature, both witnesses' cosignatures, and the statement's inclusion",
            evidence=ctx.rel(proof_file),
            recheck=ctx.log_verify("--proof", proof_file, "--entry", entry5),
            facts={"index": proof.index, "cosigners": sorted(cosigners)},
        ),
    ]


def _grown(ctx: DemoContext, client: LogClient, http: httpx.Client, url: str) -> tuple[VerifiedTree, Claim]:
    for e in ENTRIES[10:]:
        _append(http, url, e)
    tree = client.update()
    size = tree.checkpoint.checkpoint.tree_size
    if (tree.previous_size, size) != (10, 20):
        raise VerificationError(
            f"the log was expected to grow from 10 to 20 entries, not {tree.previous_size} to {size}"
        )
    claim = Claim(
        id="log.append-only",
        promise=SECRET,
        status=Status.PROVED,
        check="after 10 more statements the log has 20 entries, and the verifier checked that the new tree "
        "contains the 10-entry tree it verified before, unchanged: nothing was removed or rewritten",
        evidence=ctx.rel(ctx.state_dir),
        recheck=ctx.log_verify("--state", ctx.state_dir),
        facts={"previous_size": tree.previous_size, "tree_size": size},
    )
    return tree, claim


def _forged(ctx: DemoContext, cp: Checkpoint) -> Claim:
    forger = generate_ed25519(ctx.home.log.config.origin)
    forged = SignedCheckpoint.sign(
        Checkpoint(origin=cp.origin, tree_size=cp.tree_size + 1, root_hash=b"\x00" * 32), forger
    )
    proof = TlogProof(index=0, inclusion=(), checkpoint=forged)
    try:
        verify_tlog_proof(proof, ENTRIES[0], ctx.policy())
    except VerificationError as e:
        refusal = str(e)
    else:
        raise VerificationError("a checkpoint signed by a stranger's key verified")
    proof_file = ctx.write_evidence("forged.tlog-proof", proof.to_bytes())
    entry0 = ctx.write_evidence("entry-0", ENTRIES[0])
    return Claim(
        id="log.forged-checkpoint-rejected",
        promise=SECRET,
        status=Status.PROVED,
        check="a checkpoint signed under the log's name by a key that is not the log's is rejected by the pinned "
        "policy",
        evidence=ctx.rel(proof_file),
        recheck=ctx.log_verify("--proof", proof_file, "--entry", entry0, exit_code=1),
        facts={"refusal": refusal},
    )


def _fork_refused(ctx: DemoContext, cosigned: Checkpoint) -> Claim:
    fork = SignedCheckpoint.sign(
        Checkpoint(origin=cosigned.origin, tree_size=cosigned.tree_size + 5, root_hash=b"\x01" * 32),
        ctx.home.log.signer(),
    )
    request = f"old {cosigned.tree_size}\n\n".encode() + fork.to_bytes()
    try:
        ctx.witnesses[0].add_checkpoint(request)
    except WitnessRefusal as e:
        if e.status != 422:
            raise VerificationError(f"witness w1 refused the fork for another reason: {e}") from e
    else:
        raise VerificationError("witness w1 cosigned a fork of the log")
    return Claim(
        id="log.fork-refused-by-witness",
        promise=SECRET,
        status=Status.PROVED,
        check=f"witness w1, having cosigned the {cosigned.tree_size}-entry tree, refused to cosign a checkpoint "
        f"of size {fork.checkpoint.tree_size} that carries the log's own signature but does not extend that "
        "tree: a checkpoint of a second history cannot collect the cosignatures customers require",
        evidence=ctx.rel(ctx.witnesses[0].state_path),
        recheck_unavailable="the witness checks requests only while it serves; the demo stopped it",
        facts={
            "cosigned_size": cosigned.tree_size,
            "fork_size": fork.checkpoint.tree_size,
            "http_status": 422,
        },
    )


def log_stage(ctx: DemoContext) -> Stage:
    # Imported here: the server pulls in FastAPI (see overt.demo.context.running_witnesses).
    from overt.server.log import create_app
    from overt.server.runner import BackgroundServer

    with BackgroundServer(create_app(ctx.home)) as srv, httpx.Client(timeout=60) as http:
        answers, appended = _appended(ctx, http, srv.url)
        _backup_database(ctx)
        client = ctx.client(http_fetcher(f"{srv.url}/log", http))
        first, verified = _verified(ctx, client, answers)
        grown, append_only = _grown(ctx, client, http, srv.url)
    return Stage(
        name="log",
        title="the transparency log",
        setup=f"log {ctx.home.log.config.origin} served over HTTP; witnesses w1 and w2, each with its own key "
        "and state, must both cosign every checkpoint before it is published",
        claims=(
            appended,
            *verified,
            append_only,
            _forged(ctx, first.checkpoint.checkpoint),
            _fork_refused(ctx, grown.checkpoint.checkpoint),
        ),
    )
