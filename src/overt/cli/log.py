"""``overt log ...``: append, publish, prove, verify, configure witnesses, fsck and recover."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from overt.cli.common import (
    HomeOpt,
    JsonOpt,
    PolicyOpt,
    StateOpt,
    TofuOpt,
    Trust,
    VkeyOpt,
    console,
    emit_json,
    human,
    log_client,
    printable,
    progress,
    read_file,
)
from overt.errors import InclusionError, UnpublishedError, UsageError
from overt.home import MAIN_LOG, Home, append_through_server, resolve_home
from overt.tlog.client import LogClient, LogVerification, VerifiedTree, check_http_url, verify_tlog_proof
from overt.tlog.cosignature import parse_cosignature_vkey
from overt.tlog.log import AddedEntries, PublishResult
from overt.tlog.policy import PolicyRevision, PolicyWitness
from overt.tlog.proof import SavedProof, TlogProof

NameOpt = Annotated[
    str,
    typer.Option(
        "--name",
        help="the home's log: main, or a named one such as an access log (access-ch)",
        metavar="NAME",
    ),
]

app = typer.Typer(
    help="The transparency log: append entries, make proofs, verify as a client.", no_args_is_help=True
)


@app.command()
def add(
    files: Annotated[
        list[Path], typer.Argument(help="files whose bytes become log entries (<= 65535 bytes)")
    ],
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Append entries, publish a checkpoint, and print their indices (exit 2 if it cannot be published).

    While 'overt serve' holds the home's log, the entries go through its POST /add."""
    h = Home(resolve_home(home))
    entries = [read_file(f) for f in files]
    names = [str(f) for f in files]
    url = h.log.running_server()
    if url is not None:
        receipts = [append_through_server(url, e, h.log.policy()) for e in entries]
        added = AddedEntries(
            names=tuple(names),
            indices=tuple(r.index for r in receipts),
            published=all(r.published for r in receipts),
            through=url,
        )
    else:
        log = h.log.open()
        try:
            added = log.add_and_publish(entries, names=names)
        finally:
            log.close()
    if json:
        emit_json(added.to_dict())
    else:
        for name, i in zip(added.names, added.indices, strict=True):
            typer.echo(f"{i}\t{printable(name)}")  # one line per entry, whatever the file is called
        if added.through is not None:
            typer.echo(f"appended through the log server at {added.through}")
    if added.publication is not None:
        _report_publication(added.publication, text=not json)


@app.command()
def proof(
    index: Annotated[int, typer.Argument(min=0, help="entry index")],
    out: Annotated[Path | None, typer.Option(help="write the .tlog-proof here instead of stdout")] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Write a c2sp.org/tlog-proof for an entry under the published checkpoint, verified before it is written."""
    log = Home(resolve_home(home)).log.read()
    try:
        made = log.published_proof(index)
    finally:
        log.close()
    if out is not None:
        out.write_bytes(made.to_bytes())
    if json:
        emit_json(made.to_dict() if out is None else SavedProof(proof=made, path=out).to_dict())
    elif out is None:
        typer.echo(made.to_bytes().decode(), nl=False)
    else:
        console.print(
            f"wrote {out}: the proof of entry {index} under the published tree of size {made.tree_size}"
        )


@app.command()
def verify(
    log: Annotated[
        str | None, typer.Option(help="log prefix: http(s) URL or directory (default: home's public/log)")
    ] = None,
    policy: PolicyOpt = None,
    vkey: VkeyOpt = None,
    trust_on_first_use: TofuOpt = False,
    state: StateOpt = None,
    entry: Annotated[Path | None, typer.Option(help="verify this entry is in the log")] = None,
    index: Annotated[
        int | None, typer.Option(min=0, help="index of --entry (else the entry bundles are scanned)")
    ] = None,
    proof_file: Annotated[
        Path | None, typer.Option("--proof", help="verify a .tlog-proof file offline (needs --entry)")
    ] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Verify a tlog-tiles log as a client: signature, witness quorum, consistency, inclusion.

    The log's trust roots are yours, never the log's: --policy, --vkey, or --trust-on-first-use."""
    source = log or str(resolve_home(home) / "public" / "log")
    trust = Trust(policy=policy, vkey=vkey, trust_on_first_use=trust_on_first_use, state=state)
    client, basis = log_client(source, trust, remember=True)
    if proof_file is not None:
        if entry is None:
            raise UsageError("--proof needs --entry: the entry the proof is about")
        p = TlogProof.from_bytes(read_file(proof_file))
        cosigners = verify_tlog_proof(p, read_file(entry), client.policy)
        _report(LogVerification.of_proof(p, cosigners, log=source, trust=basis, path=str(proof_file)), json)
        return
    tree = client.update()
    included = None
    if entry is not None:
        included = (str(entry), _verify_inclusion(client, tree, entry, index, json))
    quorum = client.policy.quorum
    _report(LogVerification.of_tree(tree, log=source, trust=basis, quorum=quorum, included=included), json)


def _verify_inclusion(
    client: LogClient, tree: VerifiedTree, entry: Path, index: int | None, json: bool
) -> int:
    """The index of ``entry`` (scanned for without ``index``), its inclusion under ``tree`` verified."""
    cp = tree.checkpoint.checkpoint
    data = read_file(entry)
    if index is None:
        with progress(json=json) as bar:
            bar.add_task("scanning entry bundles", total=None)
            index = client.find_entry(data, cp.tree_size)
        if index is None:
            raise InclusionError(f"{entry} is not among the {cp.tree_size} entries of {cp.origin}")
    if index >= cp.tree_size:
        raise InclusionError(f"index {index} is outside the verified tree of size {cp.tree_size}")
    client.verify_inclusion(data, index, tree.checkpoint)
    return index


def _report(verified: LogVerification, json: bool) -> None:
    if json:
        emit_json(verified.to_dict())
        return
    report = verified.to_dict()
    for check in verified.checks:
        typer.echo(f"ok  {check}")
    for key in ("trust", "origin", "tree_size", "root_hash", "cosigners", "index"):
        if key in report:
            typer.echo(f"    {key}: {human(report[key])}")


@app.command("policy")
def policy_cmd(
    add_witness: Annotated[list[str] | None, typer.Option(help="NAME=VKEY=URL of a witness to add")] = None,
    remove_witness: Annotated[list[str] | None, typer.Option(help="NAME of a witness to remove")] = None,
    quorum: Annotated[str | None, typer.Option(help="none, all, any, or a number k of the witnesses")] = None,
    name: NameOpt = MAIN_LOG,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show or change a log's witness policy (tlog-policy), also published at public/log/policy (a named
    log's at public/logs/NAME/policy).

    Without --quorum a change keeps the rule: all stays all, k stays k."""
    log = Home(resolve_home(home)).log_named(name)
    added = [_witness(spec) for spec in add_witness or []]
    removed = remove_witness or []
    changed = bool(added) or bool(removed) or quorum is not None
    revision = PolicyRevision(
        policy=log.policy().revised(witnesses=added, remove=removed, quorum=quorum),
        changed=changed,
        path=log.paths.policy,
    )
    if changed:
        log.save_policy(revision.policy)
    if json:
        emit_json(revision.to_dict())
        return
    typer.echo(revision.policy.to_bytes().decode(), nl=False)


def _witness(spec: str) -> PolicyWitness:
    """A witness given as ``NAME=VKEY=URL``."""
    parts = spec.split("=", 2)
    if len(parts) != 3:
        raise UsageError(f"--add-witness takes NAME=VKEY=URL, not {spec}")
    name, vkey, url = parts
    return PolicyWitness(name=name, verifier=parse_cosignature_vkey(vkey), url=check_http_url(url))


@app.command()
def publish(name: NameOpt = MAIN_LOG, home: HomeOpt = None, json: JsonOpt = False) -> None:
    """Sign the current tree and publish it if the witness quorum cosigns; exit 2 if it still cannot."""
    log = Home(resolve_home(home)).log_named(name)
    url = log.running_server()
    if url is not None:
        raise UnpublishedError(
            f"'overt serve' at {url} holds this log and retries publication itself every batch interval; "
            "resend an entry to it to learn whether it is published, or stop it to publish from here"
        )
    result = log.publish()
    if json:
        emit_json(result.to_dict())
    _report_publication(result, text=not json)


def _report_publication(result: PublishResult, *, text: bool) -> None:
    """Say whether the checkpoint is published, and exit 2 if it is not: nothing is verifiable yet."""
    if text:
        cp = result.checkpoint.checkpoint
        state = "published" if result.published else "NOT published: the witness quorum is not met"
        typer.echo(f"checkpoint of size {cp.tree_size}: {state}")
        typer.echo(f"cosigned by: {', '.join(sorted(result.cosigners)) or 'no witness'}")
        for name, why in result.failures.items():
            typer.echo(f"  witness {name}: {why}")
    if not result.published:
        raise typer.Exit(2)


@app.command()
def fsck(
    full: Annotated[
        bool, typer.Option("--full", help="check every file, not only those since the last check")
    ] = False,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Check tiles, entry bundles and the database against the signed tree; exit 1 naming what is damaged."""
    report = Home(resolve_home(home)).log.fsck(full=full)
    if json:
        emit_json(report.to_dict())
    else:
        scope = "all files" if report.full or report.start == 0 else f"files for entries from {report.start}"
        typer.echo(
            f"checked {scope} of a tree of size {report.tree_size}: "
            f"{report.bundles} entry bundles, {report.tiles} tiles"
        )
        for d in report.damage:
            typer.echo(f"DAMAGED {d.path}: {d.problem}")
        for problem in report.database:
            typer.echo(f"DATABASE {problem}")
        typer.echo("ok" if report.ok else "the log is damaged; see above")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def recover(
    force: Annotated[bool, typer.Option("--force", help="rebuild even if the database agrees")] = False,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Rebuild the sequencing database from the published tiles, after verifying them against the signed head."""
    result = Home(resolve_home(home)).log.recover(force=force)
    if json:
        emit_json(result.to_dict())
        return
    typer.echo(result.message)
    for note in result.notes:
        typer.echo(note)
