"""The later stages of ``overt demo``: keys and jurisdictions, the reproducible build, AV databases.

Each stage takes the demo's conveyor home, the demo directory and a log client, and prints what it proved.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from overt.attest.dsse import Envelope
from overt.attest.provenance import BuildDefinition, Builder, Provenance, RunDetails
from overt.attest.statement import ResourceDescriptor, Statement
from overt.attest.verify import verify_statement
from overt.avdb.delta import make_delta, rule_diff
from overt.avdb.install import install, installed, update
from overt.avdb.package import read_database
from overt.avdb.release import AvdbStore, Refused, Released, release
from overt.avdb.scan import scan_paths
from overt.build.conveyor import build, variations_text, verdict_text
from overt.build.publish import SigningContext
from overt.build.sandbox import check_sandbox
from overt.cli.common import console
from overt.cli.keys import print_keys
from overt.errors import Error, PolicyError
from overt.home import Home
from overt.keys.audit import REFUSED, SIGNED, audit_key
from overt.keys.builders import conveyor_builder_id, register_first_builder
from overt.keys.registry import KeyRecord, Role, load_public_keys
from overt.keys.rotation import rotate
from overt.keys.signers import generate_file_key
from overt.source.escrow import DEFAULT_DIRECTORY_MTIME, add_recipe, read_directory
from overt.source.snapshot import SnapshotFile
from overt.tlog.client import LogClient


def _proved(text: str) -> None:
    console.print(f"[green]PROVED[/] {text}", soft_wrap=True)


def keys_stage(h: Home, root: Path, client: LogClient) -> None:
    now = datetime.now(UTC)
    for role, keytype in ((Role.BUILDER, "ed25519"), (Role.AUDITOR, "ecdsa"), (Role.RELEASE, "ed25519")):
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
    release_key = h.registry.current(Role.RELEASE, now)
    registered = register_first_builder(
        h.builder_store(),
        service,
        release_key,
        builder_id=h.conveyor.provenance_builder_id,
        jurisdiction=h.conveyor.jurisdiction,
    )
    if registered is None:
        raise Error("the demo home already had a builder registry")
    _proved(
        f"builder registry v{registered[0].version} lists {h.conveyor.provenance_builder_id} in "
        f"{h.conveyor.jurisdiction}, signed by release key {release_key.keyid[:16]} and logged at index "
        f"{registered[1].receipt.index}: provenance is signed only from builder ids listed there, exactly"
    )
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
                builder=Builder(id=conveyor_builder_id(h.conveyor.builder_id, jurisdiction))
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
    # A builder abroad that claims nothing at all: only the registry can tell, and it does not list it.
    abroad = Provenance(
        build_definition=BuildDefinition(
            build_type="https://overt.dev/build/v1", external_parameters={"source": "demo"}
        ),
        run_details=RunDetails(builder=Builder(id="https://build.ru.example/conveyor/v1")),
    ).statement(subject)
    try:
        service.sign(builder, abroad)
    except PolicyError as e:
        _proved(
            f"provenance from builder https://build.ru.example/conveyor/v1, which names no jurisdiction, refused "
            f"through the builder registry ({e}); refusal logged at index {e.evidence['refusal_logged_at']}"
        )
    else:
        raise Error("a key signed provenance from an unregistered builder")
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
    if [e.kind for e in report.entries] != [SIGNED, REFUSED, REFUSED, SIGNED] or not all(
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


def build_stage(h: Home, root: Path, client: LogClient) -> None:
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
    context = SigningContext(service=service, key=builder, builder_id=h.conveyor.provenance_builder_id)
    report = build(h.escrow, source.sha256, context=context, publish_dir=h.public / "builds", check=True)
    (out,) = report.outputs
    _proved(
        f"built twice in the bubblewrap sandbox, varying {variations_text(report.result)}: "
        f"{verdict_text(report)}; {out.name} sha256 {out.sha256[:16]}"
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


def _demo_rule(name: str, rule_id: str, strings: str, condition: str, version: int = 1) -> str:
    meta = {
        "id": rule_id,
        "version": str(version),
        "author": "overt demo",
        "date": "2026-11-28",
        "description": f"demo rule {name}",
        "reference": "https://overt.example/rules",
    }
    lines = "\n".join(f'    {k} = "{v}"' for k, v in meta.items())
    return f"rule {name} {{\n  meta:\n{lines}\n  strings:\n{strings}\n  condition:\n    {condition}\n}}\n"


def avdb_stage(h: Home, root: Path, client: LogClient) -> None:
    # The EICAR test file, assembled here (reversed) so that no file of overt contains it whole.
    eicar = "*H+H$!ELIF-TSET-SURIVITNA-DRADNATS-RACIE$}7)CC7)^P(45XZP\\4[PA@%P!O5X"[::-1].encode()
    now = datetime.now(UTC)
    builder = h.registry.current(Role.BUILDER, now)
    auditor = h.registry.current(Role.AUDITOR, now)
    store = AvdbStore(h.public)
    service = h.signing_service()
    eicar_rule = _demo_rule(
        "EICAR_Test_File", "OVT-0001", '    $e = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE"', "$e at 28"
    )
    dropper = _demo_rule("Dropper_Alpha", "OVT-0002", '    $a = "alpha-dropper-config-v1"', "$a")
    header = "# version: 1\n# author: overt demo\n# date: 2026-11-28\n# description: demo hashes\n# reference: https://overt.example\n"
    hashes = header + f"{hashlib.md5(eicar).hexdigest()}:{len(eicar)}:Overt.Demo.EICAR\n"

    def tree(name: str, files: dict[str, str]) -> list[SnapshotFile]:
        d = root / "avdb-rules" / name
        for rel, text in files.items():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_text(text)
        return read_directory(d)

    def do(files: list[SnapshotFile], version: int) -> Released | Refused:
        return release(
            store,
            h.escrow,
            files,
            name="demo",
            version=version,
            service=service,
            builder=builder,
            auditor=auditor,
            builder_id=h.conveyor.builder_id,
            jurisdiction=h.conveyor.jurisdiction,
        )

    v1 = do(tree("v1", {"yara/main.yar": eicar_rule + dropper, "hashes/main.hdb": hashes}), 1)
    if not isinstance(v1, Released):
        raise Error(f"the clean demo database was refused: {[f.message for f in v1.unwaived]}")
    _proved(
        f"AV database demo v1 built, audited (no findings; report log entry {v1.audit_signed.receipt.index}) "
        f"and signed (provenance log entry {v1.provenance.receipt.index}), sha256 {v1.digest[:16]}; "
        + (
            "compiled rules included: two compilations in separate bubblewrap sandboxes gave the same bytes"
            if v1.compiled
            else "no compiled rules: two sandboxed compilations differed, endpoints compile from source"
        )
    )
    hunter = _demo_rule(
        "Memo_Classified",
        "OVT-0666",
        '    $pdf = "%PDF"\n    $m = "TOP SECRET"\n    $w = "ministry"',
        "$pdf at 0 and $m and $w",
    )
    refused = do(
        tree("v2-hunting", {"yara/main.yar": eicar_rule + dropper + hunter, "hashes/main.hdb": hashes}), 2
    )
    if not isinstance(refused, Refused):
        raise Error("a database with a document-hunting rule was released")
    checks = sorted({f.check for f in refused.unwaived})
    _proved(
        f"a database with a document-hunting rule is refused: {len(refused.unwaived)} unwaived findings "
        f"({', '.join(checks)}); the audit is log entry {refused.audit_signed.receipt.index}"
    )
    dropper2 = _demo_rule(
        "Dropper_Alpha",
        "OVT-0002",
        '    $a = "alpha-dropper-config-v1"\n    $b = "alpha-dropper-config-v2"',
        "any of them",
        version=2,
    )
    beta = _demo_rule("Dropper_Beta", "OVT-0003", '    $a = "beta-loader-stage2"', "$a")
    v2 = do(tree("v2", {"yara/main.yar": eicar_rule + dropper2 + beta, "hashes/main.hdb": hashes}), 2)
    if not isinstance(v2, Released):
        raise Error("the clean demo v2 was refused")
    old, new = read_database(v1.path.read_bytes()), read_database(v2.path.read_bytes())
    changes = rule_diff(old, new)
    _proved(
        "diff v1 → v2 for reviewers: "
        + ", ".join(f"{c.change} {c.rule_id} ({len(c.findings)} findings)" for c in changes)
    )
    agent = root / "agent"
    install(agent, v1.path.read_bytes(), v1.provenance.entry, [builder.key], log=client)
    delta = make_delta(old, new)
    upd = update(
        agent,
        v2.provenance.entry,
        [builder.key],
        deltas=[delta],
        fetch_full=lambda: v2.path.read_bytes(),
        log=client,
    )
    _proved(
        f"endpoint installed v1 (provenance verified and found in the log), then moved to v2 through a "
        f"{len(delta)}-byte delta (full database {len(v2.path.read_bytes())} bytes), checked against the signed digest: {upd.via_delta}"
    )
    folder = root / "scan-me"
    (folder / "docs").mkdir(parents=True, exist_ok=True)
    (folder / "eicar.com").write_bytes(eicar)
    (folder / "docs" / "notes.txt").write_text("nothing to see here\n")
    (folder / "docs" / "beta.bin").write_bytes(b"..beta-loader-stage2..")
    report = scan_paths(installed(agent), [folder])
    found = sorted(f"{Path(d.path).name}:{d.name}" for d in report.detections)
    _proved(
        f"overt scan of {report.files} files found {', '.join(found)} (exit code {report.exit_code}, as clamscan)"
    )
