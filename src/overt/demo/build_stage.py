"""Demo stage "a reproducible build": a sample product's source is escrowed and logged, built twice in the
bubblewrap sandbox with variations, and its SLSA provenance, naming that source, is signed and logged.

Without a usable sandbox the escrow still runs and the two build claims are ``skipped``, never proved.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from overt.attest.provenance import Provenance
from overt.attest.verify import verify_statement
from overt.build.conveyor import build, variations_text, verdict_text
from overt.build.publish import Publication
from overt.build.sandbox import check_sandbox
from overt.demo.claims import Claim, Promise, Stage, Status
from overt.demo.context import DemoContext
from overt.errors import Error, VerificationError
from overt.keys.registry import KeyRecord, Role
from overt.source.escrow import DEFAULT_DIRECTORY_MTIME, EscrowEntry, add_recipe, read_directory

SOURCE = Promise.BUILT_FROM_AUDITED_SOURCE
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
NO_REBUILD = (
    "rebuilding signs and logs a new provenance, which needs the witnesses the demo stopped; the independent "
    "auditors' stage rebuilt it from the escrow and logged their verdicts (auditors/a1/public/vsa/, "
    "auditors/a2/public/vsa/)"
)


def _escrowed(ctx: DemoContext, builder: KeyRecord) -> tuple[EscrowEntry, Claim]:
    src = ctx.root / "sample-agent-src"
    for rel, text in SAMPLE_FILES.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    files = add_recipe(read_directory(src), SAMPLE_RECIPE.encode(), DEFAULT_DIRECTORY_MTIME)
    source, signed = ctx.home.escrow.add_source(
        files, name="sample-agent-1.0", service=ctx.home.signing_service(), key=builder
    )
    if signed is None:
        raise VerificationError("the demo's new escrow already held the sample source")
    stored = ctx.home.escrow.directory / source.sha256
    if hashlib.sha256(stored.read_bytes()).hexdigest() != source.sha256:
        raise VerificationError(f"the escrowed object {stored} does not hash to {source.sha256}")
    client = ctx.client()
    client.verify_inclusion(signed.entry, signed.receipt.index, client.update().checkpoint)
    statement = ctx.write_evidence("source-escrow.dsse.json", signed.entry)
    return source, Claim(
        id="build.source-escrowed",
        promise=SOURCE,
        status=Status.PROVED,
        check=f"the source of sample-agent-1.0 is escrowed as a canonical snapshot, sha256 {source.sha256[:16]} "
        f"(in-toto dirHash {source.dir_hash[:16]}), served at public/escrow/ for auditors; the signed escrow "
        f"statement is log entry {source.log_index}, inclusion verified",
        evidence=ctx.rel(statement),
        recheck=ctx.log_verify("--entry", statement, "--index", source.log_index),
        facts={"sha256": source.sha256, "dir_hash": source.dir_hash, "log_index": source.log_index},
    )


def _reproduced(ctx: DemoContext, report: Publication) -> Claim:
    (out,) = report.outputs
    return Claim(
        id="build.reproducible",
        promise=SOURCE,
        status=Status.PROVED,
        check=f"built twice from the escrowed source in the bubblewrap sandbox (no network, read-only system, "
        f"clean environment), the second time with {variations_text(report.result)}: the outputs are "
        f"{verdict_text(report)}; {out.name} has sha256 {out.sha256[:16]}",
        evidence=ctx.rel(out.path),
        recheck_unavailable=NO_REBUILD,
        facts={"verdict": report.verdict.verdict if report.verdict else None, "output_sha256": out.sha256},
    )


def _provenance(ctx: DemoContext, source: EscrowEntry, report: Publication, builder: KeyRecord) -> Claim:
    client = ctx.client()
    client.verify_inclusion(report.signed.entry, report.signed.receipt.index, client.update().checkpoint)
    prov = Provenance.from_statement(verify_statement(report.signed.envelope, [builder.key]))
    sources = {d.digest.get("sha256") for d in prov.build_definition.resolved_dependencies}
    index = report.signed.receipt.index
    if source.sha256 not in sources or not source.log_index < index:
        raise VerificationError("the build's provenance does not name the source escrowed before it")
    (out,) = report.outputs
    return Claim(
        id="build.provenance-names-source",
        promise=SOURCE,
        status=Status.PROVED,
        check=f"the SLSA provenance of {out.name}, signed by builder key {builder.keyid[:16]}, names builder "
        f"{prov.run_details.builder.id} and the escrowed source {source.sha256[:16]} (log entry "
        f"{source.log_index}); it is log entry {index}, after the source, inclusion verified",
        evidence=ctx.rel(report.provenance_path),
        recheck=ctx.log_verify("--entry", report.provenance_path, "--index", index),
        facts={"log_index": index, "builder_id": prov.run_details.builder.id, "source_sha256": source.sha256},
    )


def _skipped(ctx: DemoContext, reason: str) -> tuple[Claim, Claim]:
    why = f"not checked: this machine cannot run the build sandbox ({reason})"
    evidence = ctx.rel(ctx.root / "sample-agent-src")
    return (
        Claim(id="build.reproducible", promise=SOURCE, status=Status.SKIPPED, check=why, evidence=evidence,
              recheck_unavailable=NO_REBUILD),
        Claim(id="build.provenance-names-source", promise=SOURCE, status=Status.SKIPPED, check=why,
              evidence=evidence, recheck_unavailable="no provenance was made"),
    )  # fmt: skip


def build_stage(ctx: DemoContext) -> Stage:
    h = ctx.home
    builder = h.registry.current(Role.BUILDER, datetime.now(UTC))
    source, escrowed = _escrowed(ctx, builder)
    try:
        check_sandbox()
    except Error as e:
        claims = (escrowed, *_skipped(ctx, str(e)))
    else:
        report = build(
            h.escrow, source.sha256, context=h.conveyor_context(), publish_dir=h.paths.builds, check=True
        )
        claims = (escrowed, _reproduced(ctx, report), _provenance(ctx, source, report, builder))
    return Stage(
        name="build",
        title="a reproducible build from escrowed source",
        setup="a sample product (a Python agent packed into a tarball by a recipe, overt.toml) is escrowed and "
        "built by the conveyor",
        claims=claims,
    )
