"""The demo directory explained to whoever opens it: ``README.md`` (for people) and ``summary.json`` (the
claims and the promise table as data, the same object ``overt demo --json`` prints).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from overt.atomic import atomic_write

if TYPE_CHECKING:
    from overt.demo.run import DemoResult

LAYOUT: Mapping[str, str] = MappingProxyType(
    {
        "README.md": "this file",
        "summary.json": "every claim as data: promise, what was checked, evidence, re-check command",
        "conveyor/": "the vendor's overt home: config.toml, keys/ (private keys), overt.db (the log's database)",
        "conveyor/public/": "what the vendor publishes, as plain static files any web server can serve",
        "conveyor/public/log/": "the transparency log (C2SP tlog-tiles): checkpoint, tile/, vkey, policy",
        "conveyor/public/keys/": "the public keys, one <keyid>.json each, with role and jurisdiction",
        "conveyor/public/builders/": "the signed builder registry",
        "conveyor/public/escrow/": "escrowed sources and rule trees, by sha256",
        "conveyor/public/builds/": "build outputs with their provenance.dsse.json",
        "conveyor/public/avdb/": "AV databases, their provenance and the signed audit reports",
        "auditors/": "two independent auditors, a1 and a2; each runs its own witness (a1/witness/ is w1 in the "
        "log policy, a2/witness/ is w2), with its own key and state",
        "auditors/a1/": "an auditor home (overt auditor init): config.toml, keys/ (its own), pinned/ (the log "
        "policy and the vendor's builder keys it was handed), state/ (its log position, escrow cache, verdict "
        "store), public/ (its key and its verdicts)",
        "auditors/a1/public/vsa/": "the auditor's SLSA VSAs, one per provenance it rebuilt, as logged, with "
        "their tlog-proofs; the vendor publishes them beside each release",
        "trusted.policy": "the log's policy as a customer pins it (log key, witness keys, quorum); every "
        "re-check uses it, never the copy the log publishes",
        "client-state/": "the customer's verifier state: the last checkpoint it verified",
        "evidence/": "the files the claims point to",
        "sample-agent-src/": "the sample product's source, as the vendor wrote it",
        "avdb-rules/": "the rule trees of AV database versions 1 and 2, and the refused one",
        "agent/": "the AV database stage's endpoint: its installed, verified AV database",
        "scan-me/": "the files the endpoint scanned",
        "recheck-agent/": "made by the 'overt avdb install' re-check, so it leaves agent/ alone",
        "conveyor/public/tuf/": "the TUF repository: metadata/, targets/ (consistent snapshots) and evidence/ "
        "(tlog-proofs of each metadata file, provenance and auditor verdict)",
        "tuf-root-keys/": "the TUF root's offline keys (2 of 3 sign a root), outside the conveyor home; in "
        "operation each holder keeps one",
        "customer/": "the customer's trust policy (policy.toml) and the TUF root and log policy it names, "
        "obtained out of band",
        "endpoint/": "the endpoint agent's directory: the pinned policy, the TUF client's metadata, the "
        "installed product and database, and trusted/, why each was trusted",
        "www/": "what the web server serves: tuf/ and log/, links into conveyor/public/",
        "nginx/": "the prefix of the nginx that served www/: nginx.conf, access.log, error.log (absent when "
        "nginx is not installed)",
        "targeted/": "the forged repository served to the endpoint for one update: signed with the vendor's "
        "keys, never logged",
        "conveyor/public/residency/registry/": "the jurisdiction registry, one signed and logged version per file "
        "(country -> jurisdiction)",
        "conveyor/public/logs/": "each jurisdiction's access log (access-br/, access-ca/, access-ch/): tlog-tiles, "
        "checkpoint and vkey, like the main log's",
        "conveyor/jurisdictions/": "one telemetry store per jurisdiction (BR/, CA/, CH/): store.db and blobs/, "
        "each stamped with its jurisdiction",
        "tenants/": "the telemetry customers: each its admin key pair (admin.pem, admin.pem.pub), API token, "
        "approvals, the access-log keys it pinned at sign-up and its verifier state (access-state/); "
        "forged-by-vendor/ is the key the vendor used to forge an approval, which was refused",
    }
)


def readme(result: DemoResult) -> str:
    lines = [
        "# overt demo",
        "",
        "What `overt demo` checked here, promise by promise. Paths are relative to this directory; every",
        "re-check command can be pasted into a shell (it exits 0, or 1 where it reproduces a refusal). The",
        "distribution re-checks judge freshness as an endpoint does: once the TUF timestamp expires (6 hours)",
        "or the witnesses' last cosignature is older than the trust policy allows (24 hours), they refuse, as",
        "they should for a repository nobody renews; run the demo again for fresh evidence.",
        "",
        "| promise | status | evidence |",
        "|---|---|---|",
    ]
    for row in result.table:
        evidence = ", ".join(f"`{e}`" for e in row.evidence) or row.note
        lines.append(f"| {row.promise.value} | {row.status} | {evidence} |")
    for stage in result.stages:
        lines += ["", f"## {stage.title}", "", stage.setup + "."]
        for c in stage.claims:
            lines += [
                "",
                f"- **{c.status.value.upper()}** ({c.promise.value}): {c.check}.",
                f"  Evidence: `{c.evidence}`.",
            ]
            if c.recheck is not None:
                expect = (
                    "" if c.recheck.exit_code == 0 else f" (exits {c.recheck.exit_code}: the refusal holds)"
                )
                lines.append(f"  Re-check{expect}: `{c.recheck.text}`")
            else:
                lines.append(f"  No re-check command: {c.recheck_unavailable}.")
    lines += ["", "## Layout", ""]
    lines += [f"- `{path}`: {what}" for path, what in LAYOUT.items()]
    return "\n".join(lines) + "\n"


def write_layout(result: DemoResult) -> tuple[Path, Path]:
    """Write ``README.md`` and ``summary.json`` into the demo directory; return their paths."""
    readme_path, summary_path = result.root / "README.md", result.root / "summary.json"
    atomic_write(readme_path, readme(result).encode())
    atomic_write(summary_path, json.dumps(result.to_dict(), indent=2, sort_keys=True).encode() + b"\n")
    return readme_path, summary_path
