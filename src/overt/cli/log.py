"""``overt log ...``: append, publish, prove, verify, configure witnesses, fsck and recover."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

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
)
from overt.cli.common import read_file as _read
from overt.errors import ConfigError, InclusionError, UnpublishedError, UsageError
from overt.home import Home, append_through_server, resolve_home
from overt.tlog.client import verify_tlog_proof
from overt.tlog.cosignature import parse_cosignature_vkey
from overt.tlog.log import PublishResult
from overt.tlog.policy import Policy, PolicyWitness, quorum_groups, quorum_of
from overt.tlog.proof import TlogProof

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
    entries = [_read(f) for f in files]
    url = h.running_server()
    if url is not None:
        receipts = [append_through_server(url, e, h.policy()) for e in entries]
        if json:
            listed = [{"file": str(f), "index": r.index} for f, r in zip(files, receipts, strict=True)]
            emit_json({"entries": listed, "through": url, "published": all(r.published for r in receipts)})
        else:
            for f, r in zip(files, receipts, strict=True):
                typer.echo(f"{r.index}\t{f}")
            typer.echo(f"appended through the log server at {url}")
        return
    log = h.open_log()
    try:
        indices = log.add(entries)
        result = log.publish()
    finally:
        log.close()
    if json:
        entries_json = [{"file": str(f), "index": i} for f, i in zip(files, indices, strict=True)]
        emit_json({"entries": entries_json, **result.to_dict()})
    else:
        for f, i in zip(files, indices, strict=True):
            typer.echo(f"{i}\t{f}")
    _report_publication(result, text=not json)


@app.command()
def proof(
    index: Annotated[int, typer.Argument(min=0, help="entry index")],
    out: Annotated[Path | None, typer.Option(help="write the .tlog-proof here instead of stdout")] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Write a c2sp.org/tlog-proof for an entry under the published checkpoint, verified before it is written."""
    log = Home(resolve_home(home)).read_log()
    try:
        published = log.published()
        if published is None:
            raise ConfigError("the log has no published checkpoint yet")
        size = published.checkpoint.tree_size
        if index >= size:
            raise UsageError(f"entry {index} is not in the published tree of size {size}")
        data = log.proof(index, published).to_bytes()
    finally:
        log.close()
    if out is not None:
        out.write_bytes(data)
    if json:
        shown = {"out": str(out)} if out is not None else {"proof": data.decode()}
        emit_json({"index": index, "tree_size": size, **shown})
    elif out is None:
        typer.echo(data.decode(), nl=False)
    else:
        console.print(f"wrote {out}: the proof of entry {index} under the published tree of size {size}")


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
    pol = client.policy
    report: dict[str, object] = {"log": source, "trust": basis}
    if proof_file is not None:
        if entry is None:
            raise UsageError("--proof needs --entry: the entry the proof is about")
        p = TlogProof.from_bytes(_read(proof_file))
        cosigners = verify_tlog_proof(p, _read(entry), pol)
        report.update(
            proof=str(proof_file),
            index=p.index,
            tree_size=p.checkpoint.checkpoint.tree_size,
            cosigners=sorted(cosigners),
            checks=["log signature", "witness quorum", "inclusion"],
        )
        _report(report, json)
        return
    tree = client.update()
    cp = tree.checkpoint.checkpoint
    checks = ["log signature", f"witness quorum ({pol.quorum})"]
    if tree.previous_size is not None:
        checks.append(f"consistency with trusted size {tree.previous_size}")
    report.update(
        origin=cp.origin,
        tree_size=cp.tree_size,
        root_hash=base64.b64encode(cp.root_hash).decode(),
        cosigners=sorted(tree.cosigners),
        previous_size=tree.previous_size,
    )
    if entry is not None:
        data = _read(entry)
        if index is None:
            with Progress(transient=True, disable=json) as progress:
                progress.add_task("scanning entry bundles", total=None)
                index = client.find_entry(data, cp.tree_size)
            if index is None:
                raise InclusionError(f"{entry} is not among the {cp.tree_size} entries of {cp.origin}")
        if index >= cp.tree_size:
            raise InclusionError(f"index {index} is outside the verified tree of size {cp.tree_size}")
        client.verify_inclusion(data, index, tree.checkpoint)
        checks.append(f"inclusion of {entry} at index {index}")
        report["index"] = index
    report["checks"] = checks
    _report(report, json)


def _report(report: dict[str, object], json: bool) -> None:
    if json:
        emit_json({"ok": True, **report})
        return
    for check in report["checks"]:  # type: ignore[attr-defined]
        typer.echo(f"ok  {check}")
    for key in ("trust", "origin", "tree_size", "root_hash", "cosigners", "index"):
        if key in report:
            typer.echo(f"    {key}: {human(report[key])}")


@app.command("policy")
def policy_cmd(
    add_witness: Annotated[list[str] | None, typer.Option(help="NAME=VKEY=URL of a witness to add")] = None,
    quorum: Annotated[str | None, typer.Option(help="none, all, any, or a number k of the witnesses")] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show or change the log's witness policy (tlog-policy), also published at public/log/policy."""
    h = Home(resolve_home(home))
    pol = h.policy()
    witnesses = list(pol.witnesses)
    for spec in add_witness or []:
        parts = spec.split("=", 2)
        if len(parts) != 3:
            raise UsageError(f"--add-witness takes NAME=VKEY=URL, not {spec}")
        name, vk, url = parts
        witnesses = [w for w in witnesses if w.name != name]
        witnesses.append(PolicyWitness(name=name, verifier=parse_cosignature_vkey(vk), url=url))
    groups = pol.groups
    q = pol.quorum
    if quorum is not None or add_witness:
        groups, q = quorum_groups(tuple(w.name for w in witnesses), quorum or quorum_of(pol))
    pol = Policy(logs=pol.logs, witnesses=tuple(witnesses), groups=groups, quorum=q)
    changed = bool(add_witness) or quorum is not None
    if changed:
        h.save_policy(pol)
    if json:
        emit_json({**_policy_dict(pol), "changed": changed, "path": str(h.policy_path)})
        return
    typer.echo(pol.to_bytes().decode(), nl=False)


def _policy_dict(pol: Policy) -> dict[str, object]:
    """The policy's parts as data, with its tlog-policy text (what a verifier pins) beside them."""
    return {
        "logs": [{"origin": lg.origin, "vkey": lg.verifier.vkey(), "url": lg.url} for lg in pol.logs],
        "witnesses": [{"name": w.name, "vkey": w.verifier.vkey(), "url": w.url} for w in pol.witnesses],
        "groups": [
            {"name": g.name, "threshold": g.threshold, "members": list(g.members)} for g in pol.groups
        ],
        "quorum": pol.quorum,
        "policy": pol.to_bytes().decode(),
    }


@app.command()
def publish(home: HomeOpt = None, json: JsonOpt = False) -> None:
    """Sign the current tree and publish it if the witness quorum cosigns; exit 2 if it still cannot."""
    h = Home(resolve_home(home))
    url = h.running_server()
    if url is not None:
        raise UnpublishedError(
            f"'overt serve' at {url} holds this log and retries publication itself every batch interval; "
            "resend an entry to it to learn whether it is published, or stop it to publish from here"
        )
    result = h.publish_log()
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
    report = Home(resolve_home(home)).fsck_log(full=full)
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
    result = Home(resolve_home(home)).recover_log(force=force)
    if json:
        emit_json(result.to_dict())
        return
    typer.echo(
        f"rebuilt the log database from {result.bundles} entry bundles and {result.tiles} tiles, all verified "
        f"against the {result.source}: size {result.tree_size}, root "
        f"{base64.b64encode(result.root_hash).decode()}"
    )
    for note in result.notes:
        typer.echo(note)
