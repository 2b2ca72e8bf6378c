"""``overt demo``: the end-to-end demonstration on embedded defaults, printing what it proved.

It grows with every capability. Today: a log with two independent witnesses, entries appended over HTTP,
checkpoints published only when both cosigned, and a client that verifies signature, quorum, inclusion,
offline tlog-proofs and consistency, and catches a forged checkpoint. Then keys bound to a jurisdiction: a key
listing, provenance signed and logged, a foreign signing request refused (and the refusal logged), a rotation,
and a per-key audit read back from the log. Then a sample product's source is escrowed, built twice in the
bubblewrap sandbox with variations, and its SLSA provenance is signed, logged and verified.
"""

from __future__ import annotations

import hashlib
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import httpx
import typer

from overt.attest.dsse import Envelope
from overt.attest.provenance import BuildDefinition, Builder, Provenance, RunDetails
from overt.attest.statement import ResourceDescriptor, Statement
from overt.attest.verify import verify_statement
from overt.build.conveyor import build, verdict_text
from overt.build.sandbox import check_sandbox
from overt.cli.common import console
from overt.cli.keys import print_keys
from overt.cli.log import quorum_groups
from overt.cli.witness import init_witness, load_witness, trust_log
from overt.errors import Error, PolicyError
from overt.home import Home
from overt.keys.audit import REFUSED, SIGNED, audit_key
from overt.keys.registry import KeyRecord, Role, load_public_keys
from overt.keys.rotation import rotate
from overt.keys.signers import generate_file_key
from overt.server.log import create_app as log_app
from overt.server.runner import BackgroundServer
from overt.server.witness import create_app as witness_app
from overt.source.escrow import DEFAULT_DIRECTORY_MTIME, add_recipe, read_directory
from overt.tlog.checkpoint import Checkpoint, SignedCheckpoint
from overt.tlog.client import LogClient, directory_fetcher, http_fetcher, verify_tlog_proof
from overt.tlog.note import generate_ed25519
from overt.tlog.policy import Policy, PolicyWitness
from overt.tlog.proof import TlogProof


def _proved(text: str) -> None:
    console.print(f"[green]PROVED[/] {text}", soft_wrap=True)


def demo(
    home: Annotated[
        Path | None, typer.Option(help="leave the populated home here (default: a temp dir)")
    ] = None,
) -> None:
    """Run the end-to-end demo and print what it proved."""
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

            # 3. A client that trusts only the public policy verifies the published checkpoint.
            state = root / "client-state"
            fetch = http_fetcher(f"{srv.url}/log")
            public_policy = Policy.from_bytes(fetch("policy"))
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

        # 6. Keys bound to a jurisdiction; every signature (and every refusal) becomes a log entry.
        _keys_demo(h, root, LogClient(directory_fetcher(h.log_dir), h.policy()))

        # 7. Escrow a product's source, build it twice in the sandbox, log its provenance.
        _build_demo(h, root, LogClient(directory_fetcher(h.log_dir), h.policy()))

    console.rule("done")
    console.print(f"inspect: {root}   verify again with:")
    console.print(f"  overt log verify --log {h.log_dir} --state {state}")
    console.print(
        f"  overt log verify --log {h.log_dir} --proof {root / 'entry-5.tlog-proof'} --entry {root / 'entry-5'}"
    )
    console.print(f"  overt keys list --home {h.path}")
    console.print(f"  overt keys audit <keyid> --home {h.path}")


def _keys_demo(h: Home, root: Path, client: LogClient) -> None:
    now = datetime.now(UTC)
    for role, keytype in ((Role.BUILDER, "ed25519"), (Role.AUDITOR, "ecdsa")):
        uri, key = generate_file_key(h.keys_dir, keytype)
        h.registry.save(
            KeyRecord.create(
                key,
                role=role,
                jurisdiction=h.conveyor.jurisdiction,
                valid_from=now,
                valid_until=None,
                uri=uri,
            )
        )
    print_keys(h.registry.records(), now)
    builder = h.registry.current(Role.BUILDER, now)
    service = h.signing_service()
    subject = (
        ResourceDescriptor(
            name="demo-app-1.0.tar.gz", digest={"sha256": hashlib.sha256(b"demo").hexdigest()}
        ),
    )

    def provenance(jurisdiction: str) -> Statement:
        return Provenance(
            build_definition=BuildDefinition(
                build_type="https://overt.dev/build/v1", external_parameters={"source": "demo"}
            ),
            run_details=RunDetails(
                builder=Builder(id=f"https://conveyor.demo.overt.example/builder?jurisdiction={jurisdiction}")
            ),
        ).statement(subject)

    signed = service.sign(builder, provenance(h.conveyor.jurisdiction))
    (root / "provenance.dsse.json").write_bytes(signed.entry)
    (published,) = load_public_keys([h.public / "keys" / f"{builder.keyid}.json"])
    verify_statement(Envelope.from_bytes(signed.entry), [published.key])
    tree = client.update()
    client.verify_inclusion(signed.entry, signed.receipt.index, tree.checkpoint)
    _proved(
        f"SLSA provenance built in {h.conveyor.jurisdiction} signed by builder key {builder.keyid[:16]} "
        f"(jurisdiction {builder.jurisdiction}); the envelope is log entry {signed.receipt.index}, inclusion verified"
    )
    try:
        service.sign(builder, provenance("US"))
    except PolicyError as e:
        refused_at = e.evidence["refusal_logged_at"]
        _proved(f"foreign signing request {e}; refusal logged at index {refused_at}")
    else:
        raise Error("a key signed provenance from a foreign jurisdiction")
    uri, key = generate_file_key(h.keys_dir, "ed25519")
    draft = KeyRecord.create(
        key, role=Role.BUILDER, jurisdiction=builder.jurisdiction, valid_from=now, valid_until=None, uri=uri
    )
    new, rotation = rotate(
        service, h.registry, builder, new_uri=uri, new_key_record=draft, reason="demo rotation"
    )
    verify_statement(Envelope.from_bytes(signed.entry), [published.key])
    _proved(
        f"builder key rotated to {new.keyid[:16]} by a statement the old key signed (log entry "
        f"{rotation.receipt.index}); the old key's provenance still verifies"
    )
    report = audit_key(client, builder.key)
    kinds = ", ".join(f"{e.index}:{e.kind}" for e in report.entries)
    if [e.kind for e in report.entries] != [SIGNED, REFUSED, SIGNED] or not all(
        e.inclusion_verified for e in report.entries
    ):
        raise Error(f"key audit found {kinds}")
    _proved(
        f"audit of key {builder.keyid[:16]} from the log lists exactly what it did ({kinds}), inclusion verified"
    )


SAMPLE_RECIPE = """\
[build]
steps = [["python3", "pack.py"]]
outputs = ["dist/*.tar.gz"]

[build.env]
SOURCE_DATE_EPOCH = "latest-mtime"
"""
SAMPLE_FILES = {
    "agent/agent.py": "VERSION = '1.0'\n\n\ndef main() -> None:\n    print('sample agent', VERSION)\n",
    "agent/rules.txt": "rule: detect eicar\n",
    "pack.py": (
        "import gzip, io, os, pathlib, tarfile\n"
        "epoch = int(os.environ['SOURCE_DATE_EPOCH'])\n"
        "buf = io.BytesIO()\n"
        "with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as tar:\n"
        "    for path in sorted(pathlib.Path('agent').rglob('*')):\n"
        "        info = tar.gettarinfo(str(path))\n"
        "        info.mtime, info.uid, info.gid, info.uname, info.gname = epoch, 0, 0, '', ''\n"
        "        tar.addfile(info, path.open('rb') if path.is_file() else None)\n"
        "pathlib.Path('dist').mkdir()\n"
        "pathlib.Path('dist/sample-agent-1.0.tar.gz').write_bytes(gzip.compress(buf.getvalue(), mtime=epoch))\n"
    ),
}


def _build_demo(h: Home, root: Path, client: LogClient) -> None:
    try:
        check_sandbox()
    except Error as e:
        console.print(f"[yellow]SKIPPED[/] reproducible build: {e}", soft_wrap=True)
        return
    src = root / "sample-agent-src"
    for rel, text in SAMPLE_FILES.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    builder = h.registry.current(Role.BUILDER, datetime.now(UTC))
    service = h.signing_service()
    files = add_recipe(read_directory(src), SAMPLE_RECIPE.encode(), DEFAULT_DIRECTORY_MTIME)
    source, _ = h.escrow.add_source(files, name="sample-agent-1.0", service=service, key=builder)
    _proved(
        f"source escrowed as sha256 {source.sha256[:16]} (dirHash {source.dir_hash[:16]}), "
        f"escrow logged at index {source.log_index}, served at public/escrow/{source.sha256[:16]}"
    )
    report = build(
        h.escrow,
        source.sha256,
        service=service,
        builder=builder,
        builder_id=h.conveyor.builder_id,
        jurisdiction=h.conveyor.jurisdiction,
        publish_dir=h.public / "builds",
        check=True,
    )
    (out,) = report.outputs
    _proved(
        f"built twice in the bubblewrap sandbox (other host path, clock +398 days, TZ, locale, umask, directory "
        f"order): {verdict_text(report)}; {out.name} sha256 {out.sha256[:16]}"
    )
    tree = client.update()
    client.verify_inclusion(report.signed.entry, report.signed.receipt.index, tree.checkpoint)
    prov = Provenance.from_statement(verify_statement(report.signed.envelope, [builder.key]))
    _proved(
        f"SLSA provenance logged at index {report.signed.receipt.index} (inclusion verified): builder "
        f"{prov.run_details.builder.id}, source {source.sha256[:16]}, escrow index {source.log_index} < "
        f"provenance index {report.signed.receipt.index}"
    )
    console.print(f"  provenance: {report.directory / 'provenance.dsse.json'}")
