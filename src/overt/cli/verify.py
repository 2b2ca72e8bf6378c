"""``overt verify FILE``: the artifact digest, the provenance signatures and the log inclusion, in one step.

cosign's ``verify-blob`` for overt. The checks are :func:`overt.attest.verify_artifact.check_artifact`'s;
this command loads the files, pins the log's trust roots the user gives (--policy, --vkey or
--trust-on-first-use, never the log's own), prints each check as PROVED or FAILED, and exits 1 naming the
checks that failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from overt.attest.verify_artifact import ArtifactVerification, check_artifact
from overt.cli.agent import verify_with_evidence
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
    log_client,
    read_file,
)
from overt.errors import UsageError, VerificationError
from overt.home import resolve_home
from overt.keys.registry import load_public_keys


def verify(
    file: Annotated[Path, typer.Argument(help="the artifact to check")],
    provenance: Annotated[
        Path | None,
        typer.Option(help="its provenance: the DSSE envelope (.dsse.json), byte for byte as logged"),
    ] = None,
    key: Annotated[
        list[Path] | None,
        typer.Option(help="trusted builder public key file (<keyid>.json); repeat for k-of-n"),
    ] = None,
    evidence: Annotated[
        Path | None,
        typer.Option(
            help="a copy of the repository's public/tuf (metadata/, evidence/): check the artifact as the "
            "endpoint agent does, offline; --policy is then your trust policy (TOML)"
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(help="with --evidence: the artifact's target path (default: found by digest)"),
    ] = None,
    agent_dir: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="with --evidence: an agent directory whose installed version must not be newer"
        ),
    ] = None,
    threshold: Annotated[int, typer.Option(min=1, help="distinct trusted keys that must have signed")] = 1,
    log: Annotated[
        str | None, typer.Option(help="the log: http(s) URL or directory (default: the home's public/log)")
    ] = None,
    index: Annotated[
        int | None,
        typer.Option(min=0, help="the provenance's log index (else the entry bundles are scanned)"),
    ] = None,
    policy: PolicyOpt = None,
    vkey: VkeyOpt = None,
    trust_on_first_use: TofuOpt = False,
    state: StateOpt = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Check an artifact against its provenance: digest, k-of-n signatures, inclusion in the log.

    Exit 0 when all three are proved, 1 naming the checks that failed. The log's trust roots are yours,
    never the log's: --policy, --vkey, or --trust-on-first-use.

    With --evidence DIR --policy TRUST-POLICY: the checks the endpoint agent makes beyond TUF (log
    inclusion of the metadata and provenance under the witness quorum, k-of-n auditors' verdicts, version,
    freshness), offline, for an artifact obtained another way."""
    if evidence is not None:
        if provenance is not None or key or log or index is not None or vkey or trust_on_first_use:
            raise UsageError(
                "--evidence checks with your trust policy alone: give only --policy (and --target, --dir)"
            )
        if policy is None:
            raise UsageError("--evidence needs --policy: your trust policy (docs/trust-policy.md)")
        verify_with_evidence(
            file, evidence=evidence, policy=policy, target=target, directory=agent_dir, json=json
        )
        return
    if provenance is None or not key:
        raise UsageError("give --provenance and --key (or --evidence DIR with your trust --policy)")
    artifact, envelope = read_file(file), read_file(provenance)
    keys = [r.key for r in load_public_keys(key)]
    source = log or str(resolve_home(home) / "public" / "log")
    trust = Trust(policy=policy, vkey=vkey, trust_on_first_use=trust_on_first_use, state=state)
    client, basis = log_client(source, trust, remember=True)
    report = check_artifact(
        artifact,
        name=file.name,
        provenance=envelope,
        keys=keys,
        threshold=threshold,
        log=client,
        index=index,
    )
    if json:
        verification = ArtifactVerification(
            artifact=str(file), provenance=str(provenance), trust=basis, report=report
        )
        emit_json(verification.to_dict())
    else:
        for check in report.checks:
            word, style = ("PROVED", "bold green") if check.proved else ("FAILED", "bold red")
            console.print(Text.assemble((word, style), f"  {check.name}: {check.detail}"))
        console.print(f"        log trust: {basis}")
    if not report.ok:
        failed = list(report.failed)
        named = failed[0] if len(failed) == 1 else f"{', '.join(failed[:-1])} and {failed[-1]}"
        raise VerificationError(
            f"{file} is not verified: the {named} check{'s' if len(failed) > 1 else ''} failed"
        )
