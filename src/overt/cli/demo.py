"""``overt demo``: the end-to-end demonstration on embedded defaults, printing what it proved.

It grows with every capability. Today: a log with two independent witnesses, entries appended over HTTP,
checkpoints published only when both cosigned, and a client that verifies signature, quorum, inclusion,
offline tlog-proofs and consistency, and catches a forged checkpoint. Then keys bound to a jurisdiction: a key
listing, provenance signed and logged, a foreign signing request refused (and the refusal logged), a rotation,
and a per-key audit read back from the log. Then a sample product's source is escrowed, built twice in the
bubblewrap sandbox with variations, and its SLSA provenance is signed, logged and verified. Last, AV databases:
an audited release, a refused document-hunting rule, a rule-level diff, an endpoint update through a delta,
and a scan.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Annotated

import httpx
import typer

from overt.cli import demo_stages
from overt.cli.common import console
from overt.errors import Error
from overt.home import Home
from overt.tlog.checkpoint import Checkpoint, SignedCheckpoint
from overt.tlog.client import LogClient, directory_fetcher, http_fetcher, verify_tlog_proof
from overt.tlog.guard import StaleDatabaseError
from overt.tlog.note import generate_ed25519
from overt.tlog.policy import Policy, PolicyWitness, quorum_groups
from overt.tlog.proof import TlogProof
from overt.tlog.witness import init_witness, load_witness, trust_log

_proved = demo_stages._proved


def _backup_database(h: Home, to: Path) -> Path:
    """An online SQLite backup of the log database, as an operator's nightly job would take it."""
    with sqlite3.connect(h.path / "overt.db") as src, sqlite3.connect(to) as dst:
        src.backup(dst)
    return to


def _restore_stage(h: Home, backup: Path) -> None:
    """Restore the old backup over the database: opening the log must refuse, and recovery must restore it."""
    published = SignedCheckpoint.from_bytes((h.log_dir / "checkpoint").read_bytes()).checkpoint
    for suffix in ("-wal", "-shm"):
        (h.path / f"overt.db{suffix}").unlink(missing_ok=True)
    shutil.copyfile(backup, h.path / "overt.db")
    try:
        h.open_log().close()
    except StaleDatabaseError as e:
        _proved(
            f"after the log database was restored from an older backup (size {e.evidence['database_size']}), "
            f"the log refused to append or sign: it had already published size {e.evidence['signed_size']}"
        )
    else:
        raise Error("the log accepted a database restored from an old backup")
    result = h.recover_log()
    if (result.tree_size, result.root_hash) != (published.tree_size, published.root_hash):
        raise Error("recovery did not restore the published tree")
    log = h.open_log()
    log.close()
    _proved(
        f"'overt log recover' rebuilt the database from the published tiles, each checked against the signed "
        f"checkpoint: size {result.tree_size}, the same root as published"
    )


def demo(
    home: Annotated[
        Path | None, typer.Option(help="leave the populated home here (default: a temp dir)")
    ] = None,
) -> None:
    """Run the end-to-end demo and print what it proved."""
    # Imported here: the servers pull in FastAPI, which every other command (overt scan on an endpoint) can skip.
    from overt.server.log import create_app as log_app
    from overt.server.runner import BackgroundServer
    from overt.server.witness import create_app as witness_app

    root = home or Path(tempfile.mkdtemp(prefix="overt-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    console.rule("overt demo")
    console.print(f"home: {root}")
    h = Home.init(root / "conveyor", origin="demo.overt.example/log")
    vkey = (h.log_dir / "vkey").read_text().strip()

    # 1. Two independent witnesses, each with its own key and state, following our log.
    witnesses = []
    for n in (1, 2):
        wdir = root / "witnesses" / f"w{n}"
        init_witness(wdir, f"witness{n}.demo.overt.example")
        trust_log(wdir, vkey)
        witnesses.append(load_witness(wdir))
    with (
        BackgroundServer(witness_app(witnesses[0])) as w1,
        BackgroundServer(witness_app(witnesses[1])) as w2,
    ):
        pol = h.policy()
        ws = tuple(
            PolicyWitness(name=f"w{n}", verifier=w.signer.verifier(), url=srv.url)
            for n, (w, srv) in enumerate(zip(witnesses, (w1, w2), strict=True), 1)
        )
        groups, quorum = quorum_groups(tuple(w.name for w in ws), "all")
        h.save_policy(Policy(logs=pol.logs, witnesses=ws, groups=groups, quorum=quorum))
        console.print(
            f"log {h.log_config.origin} with witnesses w1 ({w1.url}) and w2 ({w2.url}), quorum: both"
        )

        # 2. Start the log and append entries over its HTTP API.
        with BackgroundServer(log_app(h)) as srv, httpx.Client(timeout=60) as http:
            entries = [f"demo statement {i}: release artefact sha256:{i:064x}\n".encode() for i in range(20)]
            answers = [http.post(f"{srv.url}/add", content=e).json() for e in entries[:10]]
            for a in answers:
                if "index" not in a:
                    raise Error(f"log refused an entry: {a}")
            _proved(f"10 entries appended over HTTP, indices {[a['index'] for a in answers]}")
            again = http.post(f"{srv.url}/add", content=entries[3]).json()
            if again["index"] != answers[3]["index"]:
                raise Error("deduplication failed")
            _proved(f"re-adding an entry returns its original index ({again['index']}): strict deduplication")
            backup = _backup_database(h, root / "backup-overt.db")

            # 3. A client that pins the log's policy (handed over out of band, never read from the log it
            # checks) verifies the published checkpoint.
            state = root / "client-state"
            fetch = http_fetcher(f"{srv.url}/log")
            (root / "trusted.policy").write_bytes(h.policy_path.read_bytes())
            public_policy = Policy.from_bytes((root / "trusted.policy").read_bytes())
            client = LogClient(fetch, public_policy, state)
            tree = client.update()
            cp = tree.checkpoint.checkpoint
            _proved(
                f"checkpoint size {cp.tree_size} signed by the log and cosigned by {sorted(tree.cosigners)}"
            )
            for i in (0, 7, 9):
                client.verify_inclusion(entries[i], answers[i]["index"], tree.checkpoint)
            _proved("inclusion of entries 0, 7 and 9 verified from tiles fetched over HTTP")
            proof = TlogProof.from_bytes(answers[5]["proof"].encode())
            verify_tlog_proof(proof, entries[5], public_policy)
            (root / "entry-5.tlog-proof").write_text(answers[5]["proof"])
            (root / "entry-5").write_bytes(entries[5])
            _proved("offline tlog-proof for entry 5 verified (log signature, both cosignatures, inclusion)")

            # 4. The log grows; the client checks the new head is consistent with the one it trusted.
            for e in entries[10:]:
                http.post(f"{srv.url}/add", content=e).raise_for_status()
            tree2 = client.update()
            _proved(
                f"log grew from {tree2.previous_size} to {tree2.checkpoint.checkpoint.tree_size}; "
                "consistency proof from tiles verified"
            )

        # 5. A forged checkpoint (right key name, wrong key) is rejected, and so is a fork.
        forger = generate_ed25519(h.log_config.origin)
        forged = SignedCheckpoint.sign(
            Checkpoint(origin=cp.origin, tree_size=cp.tree_size + 1, root_hash=b"\x00" * 32), forger
        )
        try:
            verify_tlog_proof(TlogProof(index=0, inclusion=(), checkpoint=forged), entries[0], public_policy)
        except Error as e:
            _proved(f"forged checkpoint rejected: {e}")
        else:
            raise Error("a forged checkpoint verified")
        fork = SignedCheckpoint.sign(
            Checkpoint(
                origin=cp.origin, tree_size=tree2.checkpoint.checkpoint.tree_size + 5, root_hash=b"\x01" * 32
            ),
            h.log_signer(),
        )
        try:
            witnesses[0].add_checkpoint(
                f"old {tree2.checkpoint.checkpoint.tree_size}\n\n".encode() + fork.to_bytes()
            )
        except Error as e:
            _proved(f"witness w1 refuses to cosign a fork of the log: {e}")
        else:
            raise Error("a witness cosigned a fork")

        # 5b. The database is lost to an old backup: the log refuses to fork, and recovers from its tiles.
        _restore_stage(h, backup)

        # 6. Keys bound to a jurisdiction; every signature (and every refusal) becomes a log entry.
        demo_stages.keys_stage(h, root, LogClient(directory_fetcher(h.log_dir), h.policy()))

        # 7. Escrow a product's source, build it twice in the sandbox, log its provenance.
        demo_stages.build_stage(h, root, LogClient(directory_fetcher(h.log_dir), h.policy()))

        # 8. AV databases: audited releases, a refused document-hunting rule, a delta, a scan.
        demo_stages.avdb_stage(h, root, LogClient(directory_fetcher(h.log_dir), h.policy()))

    console.rule("done")
    console.print(f"inspect: {root}   verify again with:")
    trusted = root / "trusted.policy"
    console.print(f"  overt log verify --log {h.log_dir} --policy {trusted} --state {state}")
    console.print(
        f"  overt log verify --log {h.log_dir} --policy {trusted} --proof {root / 'entry-5.tlog-proof'} "
        f"--entry {root / 'entry-5'}"
    )
    console.print(f"  overt log fsck --full --home {h.path}")
    console.print(f"  overt keys list --home {h.path}")
    console.print(f"  overt keys audit <keyid> --home {h.path} --policy {trusted}")
