"""``overt log ...`` and ``overt serve``: append, prove, verify, configure witnesses."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from overt.cli.common import HomeOpt, JsonOpt, console, emit_json
from overt.cli.common import read_file as _read
from overt.errors import ConfigError, InclusionError, TransportError
from overt.home import Home, resolve_home
from overt.tlog.client import LogClient, fetcher_for, verify_tlog_proof
from overt.tlog.cosignature import parse_cosignature_vkey
from overt.tlog.policy import Group, Policy, PolicyWitness
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
    """Append entries locally (no server needed), publish a checkpoint, and print their indices."""
    h = Home(resolve_home(home))
    log = h.open_log()
    entries = [_read(f) for f in files]
    try:
        indices = log.add(entries)
        result = log.publish()
    finally:
        log.close()
    cp = result.checkpoint.checkpoint
    if json:
        emit_json(
            {
                "entries": [{"file": str(f), "index": i} for f, i in zip(files, indices, strict=True)],
                "tree_size": cp.tree_size,
                "root_hash": base64.b64encode(cp.root_hash).decode(),
                "published": result.published,
                "cosigners": sorted(result.cosigners),
                "witness_failures": result.failures,
            }
        )
    else:
        for f, i in zip(files, indices, strict=True):
            typer.echo(f"{i}\t{f}")
        state = (
            "published" if result.published else "NOT published (witness quorum not met; retried on next add)"
        )
        console.print(
            f"checkpoint: size {cp.tree_size}, {state}; cosigned by {sorted(result.cosigners) or 'none'}"
        )
        for name, why in result.failures.items():
            console.print(f"  witness {name}: {why}")
    if not result.published:
        raise typer.Exit(2)


@app.command()
def proof(
    index: Annotated[int, typer.Argument(help="entry index")],
    out: Annotated[Path | None, typer.Option(help="write the .tlog-proof here instead of stdout")] = None,
    home: HomeOpt = None,
) -> None:
    """Write a c2sp.org/tlog-proof for an entry under the published checkpoint."""
    log = Home(resolve_home(home)).open_log()
    try:
        published = log.published()
        if published is None:
            raise ConfigError("the log has no published checkpoint yet")
        size = published.checkpoint.tree_size
        if not 0 <= index < size:
            raise InclusionError(f"entry {index} is not in the published tree of size {size}")
        data = log.proof(index, published).to_bytes()
    finally:
        log.close()
    if out is None:
        typer.echo(data.decode(), nl=False)
    else:
        out.write_bytes(data)
        console.print(f"wrote {out}")


@app.command()
def verify(
    log: Annotated[
        str | None, typer.Option(help="log prefix: http(s) URL or directory (default: home's public/log)")
    ] = None,
    policy: Annotated[Path | None, typer.Option(help="tlog-policy file (default: <log>/policy)")] = None,
    vkey: Annotated[
        str | None, typer.Option(help="trust this log vkey instead of a policy (no witnesses)")
    ] = None,
    state: Annotated[Path | None, typer.Option(help="where to remember the last verified checkpoint")] = None,
    entry: Annotated[Path | None, typer.Option(help="verify this entry is in the log")] = None,
    index: Annotated[
        int | None, typer.Option(help="index of --entry (else the entry bundles are scanned)")
    ] = None,
    proof_file: Annotated[
        Path | None, typer.Option("--proof", help="verify a .tlog-proof file offline (needs --entry)")
    ] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Verify a tlog-tiles log as a client: signature, witness quorum, consistency, inclusion."""
    source = log or str(resolve_home(home) / "public" / "log")
    fetch = fetcher_for(source)
    if vkey is not None:
        pol = Policy.from_bytes(f"log {vkey}\nquorum none\n".encode())
    elif policy is not None:
        pol = Policy.from_bytes(_read(policy))
    else:
        pol = Policy.from_bytes(fetch("policy"))
    report: dict[str, object] = {"log": source}
    if proof_file is not None:
        if entry is None:
            raise ConfigError("--proof needs --entry: the entry the proof is about")
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
    client = LogClient(fetch, pol, state if state is not None else resolve_home(home) / "client-state")
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
        console.print(f"[green]ok[/]  {check}")
    for key in ("origin", "tree_size", "root_hash", "cosigners", "index"):
        if key in report:
            console.print(f"    {key}: {report[key]}")


@app.command("policy")
def policy_cmd(
    add_witness: Annotated[list[str] | None, typer.Option(help="NAME=VKEY=URL of a witness to add")] = None,
    quorum: Annotated[str | None, typer.Option(help="none, all, any, or a number k of the witnesses")] = None,
    home: HomeOpt = None,
) -> None:
    """Show or change the log's witness policy (tlog-policy), also published at public/log/policy."""
    h = Home(resolve_home(home))
    pol = h.policy()
    witnesses = list(pol.witnesses)
    for spec in add_witness or []:
        parts = spec.split("=", 2)
        if len(parts) != 3:
            raise ConfigError(f"--add-witness takes NAME=VKEY=URL, got {spec!r}")
        name, vk, url = parts
        witnesses = [w for w in witnesses if w.name != name]
        witnesses.append(PolicyWitness(name=name, verifier=parse_cosignature_vkey(vk), url=url))
    groups = pol.groups
    q = pol.quorum
    if quorum is not None or add_witness:
        groups, q = quorum_groups(tuple(w.name for w in witnesses), quorum or _k_of(pol))
    pol = Policy(logs=pol.logs, witnesses=tuple(witnesses), groups=groups, quorum=q)
    if add_witness or quorum is not None:
        h.save_policy(pol)
    typer.echo(pol.to_bytes().decode(), nl=False)


def _k_of(pol: Policy) -> str:
    for g in pol.groups:
        if g.name == pol.quorum:
            return str(g.threshold)
    return "none" if pol.quorum == "none" else "all"


def quorum_groups(names: tuple[str, ...], quorum: str) -> tuple[tuple[Group, ...], str]:
    """Turn 'none' / 'all' / 'any' / 'k' over ``names`` into policy groups and a quorum name."""
    if quorum == "none" or not names:
        return (), "none"
    k = {"all": len(names), "any": 1}.get(quorum)
    if k is None:
        if not quorum.isdigit() or not 1 <= int(quorum) <= len(names):
            raise ConfigError(f"--quorum must be none, all, any or 1..{len(names)}")
        k = int(quorum)
    return (Group(name="witnesses", threshold=k, members=names),), "witnesses"


def serve(
    home: HomeOpt = None,
    host: Annotated[str, typer.Option(help="listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="listen port")] = 8080,
) -> None:
    """Serve the log: POST /add, and public/ as static files."""
    import uvicorn

    from overt.server.log import create_app

    h = Home(resolve_home(home))
    console.print(f"serving {h.public} and the write API on http://{host}:{port}")
    try:
        uvicorn.run(create_app(h), host=host, port=port, log_level="warning")
    except OSError as e:
        raise TransportError(f"cannot listen on {host}:{port}: {e}") from e
