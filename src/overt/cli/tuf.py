"""``overt tuf ...`` (the TUF repository: init, prepare-root, sign-root, timestamp, status, add-verdict) and
``overt release`` (a product or an AV database becomes a target). The logic is :mod:`overt.distribute`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from overt.cli.common import HomeOpt, JsonOpt, console, emit_json, logged_at, read_file
from overt.distribute.checks import ReleaseContext
from overt.distribute.databases import release_database
from overt.distribute.release import (
    DEFAULT_CHANNEL,
    ProductRelease,
    ReleasedTarget,
    build_provenance,
    release_product,
)
from overt.distribute.repository import RepositoryChange, RepositoryContext, renew_repository
from overt.distribute.root import CeremonyStatus, RootKeys, init_repository, prepare_root, sign_root
from overt.distribute.status import RepositoryStatus, repository_status
from overt.distribute.verdicts import add_verdict
from overt.errors import UsageError, VerificationError
from overt.home import Home, resolve_home

app = typer.Typer(
    help="The TUF repository of this home: create it, sign root versions, renew the timestamp, show it.",
    no_args_is_help=True,
)


def _context(home: Path | None) -> RepositoryContext:
    return RepositoryContext.of_home(Home(resolve_home(home)))


def _print_change(change: RepositoryChange) -> None:
    for m in change.metadata:
        console.print(f"  {m.name}: signed by {m.role} key {m.keyid[:16]}, {logged_at(m.index)}")
    if change.evidence_complete:
        console.print(
            f"  evidence: proofs under the published checkpoint of size {change.evidence_tree_size}"
        )
    elif change.metadata:
        console.print(
            "  evidence: proofs pending, no published checkpoint covers these entries yet "
            "('overt log publish', then 'overt tuf timestamp' writes them)"
        )


def _print_root_keys(keys: RootKeys) -> None:
    console.print(
        f"root: {keys.threshold} of {len(keys.records)} offline keys, written to {keys.directory} "
        "(give each holder one file; the home keeps none):"
    )
    for record in keys.records:
        console.print(f"  {record.keyid}  {record.uri.removeprefix('file2:')}")


@app.command()
def init(
    root_keys_dir: Annotated[
        Path,
        typer.Option(help="where to write the new root keys: a directory outside the home, kept offline"),
    ],
    root_keys: Annotated[int, typer.Option(min=1, max=16, help="how many root keys (n)")] = 3,
    threshold: Annotated[int, typer.Option(min=1, max=16, help="how many of them must sign a root (k)")] = 2,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create the TUF repository in public/tuf: k-of-n offline root keys, then version 1 of every role.

    Needs active targets, release, snapshot and timestamp keys ('overt keys generate --role ...')."""
    ctx = _context(home)
    keys, change = init_repository(ctx, root_keys_dir=root_keys_dir, count=root_keys, threshold=threshold)
    if json:
        emit_json({"repository": str(ctx.layout.public), "root_keys": keys.to_dict(), **change.to_dict()})
        return
    console.print(f"created the TUF repository in {ctx.layout.public}")
    _print_root_keys(keys)
    _print_change(change)


def _print_ceremony(status: CeremonyStatus) -> None:
    console.print(
        f"root version {status.version}: {status.threshold} of {len(status.root_keyids)} root keys, "
        f"expires {status.expires:%Y-%m-%dT%H:%M:%SZ}; signed by {len(status.signed_by)} key(s)"
        + (f" ({', '.join(k[:16] for k in status.signed_by)})" if status.signed_by else "")
    )
    if status.publication is not None:
        console.print(
            f"published as metadata/{status.version}.root.json; the online roles were re-signed under it:"
        )
        _print_change(status.publication)
        return
    console.print(
        f"  NOT published: {status.missing_previous} more signature(s) needed from the root keys of version "
        f"{status.version - 1} and {status.missing_new} from those of version {status.version} "
        f"(staged in {status.staged}; each holder runs 'overt tuf sign-root --key KEYFILE')"
    )


@app.command("prepare-root")
def prepare_root_cmd(
    threshold: Annotated[
        int | None, typer.Option(min=1, max=16, help="the new threshold (default: unchanged)")
    ] = None,
    new_root_keys_dir: Annotated[
        Path | None,
        typer.Option(help="replace the root keys: generate new ones into this directory, outside the home"),
    ] = None,
    root_keys: Annotated[
        int | None,
        typer.Option(min=1, max=16, help="with --new-root-keys-dir: how many (default: as many as now)"),
    ] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Stage the next root version for the signing ceremony: the root keys (kept, or new ones), the threshold,
    and the online keys this home now holds active. Nothing is published until it is signed."""
    status, keys = prepare_root(
        _context(home), threshold=threshold, new_keys_dir=new_root_keys_dir, count=root_keys
    )
    if json:
        emit_json({**status.to_dict(), "new_root_keys": None if keys is None else keys.to_dict()})
        return
    if keys is not None:
        _print_root_keys(keys)
    _print_ceremony(status)


@app.command("sign-root")
def sign_root_cmd(
    key: Annotated[Path, typer.Option(help="your root key file (PEM); it never leaves your hands otherwise")],
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Add one holder's signature to the staged root version; it is published once the threshold of the
    current root's keys and of its own have signed."""
    status = sign_root(_context(home), key)
    if json:
        emit_json(status.to_dict())
        return
    _print_ceremony(status)


@app.command()
def timestamp(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """Re-sign the timestamp (and renew any online role past half its lifetime); for a timer, see
    docs/operations.md."""
    change = renew_repository(_context(home))
    if json:
        emit_json(change.to_dict())
        return
    ts = change.metadata[-1]
    console.print(f"timestamp version {ts.version}, expires {ts.statement.expires}")
    _print_change(change)


def _print_status(status: RepositoryStatus) -> None:
    for role in status.roles:
        state = "EXPIRED" if role.role in status.expired else "expires"
        console.print(
            f"{role.role:9} {role.name:22} {state} {role.expires:%Y-%m-%dT%H:%M:%SZ}  "
            f"{role.threshold} of {', '.join(k[:16] for k in role.keyids)}"
        )
    layout = f"in {status.bins} hash bins" if status.bins else "listed by the release role"
    console.print(f"targets: {status.targets}, {layout}")
    if status.staged is not None:
        console.print(
            f"staged: root version {status.staged.version}, signed by {len(status.staged.signed_by)} key(s)"
        )
    if status.unlogged:
        for u in status.unlogged:
            console.print(f"NOT LOGGED: {u.name}: {u.reason}")
    else:
        console.print(
            f"every metadata file served is proved logged: tlog-proofs verified under this home's log policy "
            f"(witness quorum: {status.quorum})"
        )


@app.command()
def status(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """Show each role's version, expiry and keys, the targets, a staged root, and any metadata file served
    without proof that its digest is logged (exit 1 if there is one, or a role has expired)."""
    result = repository_status(_context(home))
    if json:
        emit_json(result.to_dict())
    else:
        _print_status(result)
    if result.unlogged or result.expired:
        problems = [f"{len(result.unlogged)} metadata file(s) served without proof of logging"] * bool(
            result.unlogged
        )
        problems += [f"expired: {', '.join(result.expired)}"] * bool(result.expired)
        raise VerificationError(f"the repository is not sound: {'; '.join(problems)}")


def _print_release(result: ReleasedTarget) -> None:
    o = result.custom["overt"]
    what = f"channel {o['channel']}" if "channel" in o else f"database {o['database']}"
    console.print(f"released {result.path} ({what}), sha256 {result.sha256}, {result.length} bytes")
    console.print(
        f"  provenance: log entry {result.provenance_index}, inclusion proved under the log's witness quorum"
    )
    if result.delta is not None:
        console.print(f"  delta: {result.delta} (transport only)")
    if result.channel_index is not None:
        console.print(f"  channel index: {result.channel_index} now names this version")
    _print_change(result.publication)


def release(
    artifact: Annotated[Path | None, typer.Argument(help="the artifact to release (not with --avdb)")] = None,
    product: Annotated[str | None, typer.Option(help="the product the artifact is a version of")] = None,
    version: Annotated[
        str | None, typer.Option(help="its version: PEP 440 for products, an integer for --avdb")
    ] = None,
    channel: Annotated[str, typer.Option(help="the release channel")] = DEFAULT_CHANNEL,
    provenance: Annotated[
        Path | None,
        typer.Option(help="its provenance envelope, as logged (default: provenance.dsse.json of its build)"),
    ] = None,
    avdb: Annotated[
        str | None, typer.Option(help="release this AV database (built with 'overt avdb build')")
    ] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Publish a checked target in the TUF repository, its provenance proved logged first.

    Refused (exit 1) when the provenance is not logged under the witness quorum, fails the jurisdiction
    policy or the builder registry, when an AV database's audit did not pass, when the version is not newer
    than the last, or when the version was released already."""
    if version is None:
        raise UsageError("--version is required")
    ctx = ReleaseContext.of_home(Home(resolve_home(home)))
    if avdb is not None:
        if artifact is not None or product is not None:
            raise UsageError("--avdb releases a database built here: give no ARTIFACT and no --product")
        if not version.isdigit():
            raise UsageError(f"an AV database version is an integer, not {version!r}")
        result = release_database(ctx, name=avdb, version=int(version))
    else:
        if artifact is None or product is None:
            raise UsageError("give the ARTIFACT and --product (or --avdb NAME)")
        found = provenance or build_provenance(artifact, ctx.public / "builds")
        request = ProductRelease(
            artifact=read_file(artifact),
            file_name=artifact.name,
            product=product,
            version=version,
            provenance=read_file(found),
            channel=channel,
        )
        result = release_product(ctx, request)
    if json:
        emit_json(result.to_dict())
        return
    _print_release(result)


@app.command("add-verdict")
def add_verdict_cmd(
    vsa: Annotated[
        Path, typer.Argument(help="an auditor's SLSA VSA: its DSSE envelope, byte for byte as logged")
    ],
    target: Annotated[
        str, typer.Option(help="the released target it judges, e.g. products/demo/1.0/demo.tar.gz")
    ],
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Publish an auditor's verdict beside its target, with its tlog-proof, once it is in the log under the
    witness quorum. Refused (exit 1) if it is not a VSA about that exact target, or not logged."""
    result = add_verdict(ReleaseContext.of_home(Home(resolve_home(home))), read_file(vsa), target=target)
    if json:
        emit_json(result.to_dict())
        return
    console.print(
        f"published the {result.result} verdict {result.sha256[:16]} on {result.target} (log entry "
        f"{result.log_index}, verifier {result.verifier}); {result.verdicts} verdict(s) published on it"
    )
