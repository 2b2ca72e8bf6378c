"""Endpoint update benchmark: ``python -m benchmarks.update [--rounds N] [--mib N] [--targets N]``.

In one run on this machine, with everything real (a conveyor home whose log is cosigned by two witnesses over
HTTP, a TUF repository, two test auditors whose PASSED VSAs are logged, Debian's nginx serving ``public/`` on
127.0.0.1):

* releases a 10 MiB artifact;
* measures, interleaved over several rounds, a cold ``overt agent update`` (a fresh agent directory pinned to
  the same policy; split into TUF, evidence verification and install, as the agent times them) and a cold
  update of the same target by the stock ``tuf.ngclient.Updater`` (a fresh metadata directory bootstrapped
  from the same root: refresh, lookup, download). ``overhead_vs_ngclient_ratio`` is the median of the
  per-round ratios;
* publishes 10,000 more targets (the release role splits into hash bins) and measures, interleaved, a warm
  no-op agent update (installed version current: TUF refresh, channel lookup, the log's head and freshness)
  against a warm no-op ngclient refresh and lookup of the same target.

The last line is one JSON object of figures (milliseconds, medians).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tuf.ngclient import Updater

from overt.attest.provenance import BuildDefinition, Builder, BuildMetadata, Provenance, RunDetails
from overt.attest.statement import ResourceDescriptor
from overt.attest.vsa import PASSED, VerificationSummary, VsaVerifier
from overt.distribute.agentdir import AgentLayout, pin_policy
from overt.distribute.checks import ReleaseContext
from overt.distribute.endpoint import CURRENT, INSTALLED, update_endpoint
from overt.distribute.release import ProductRelease, ReleasedTarget, release_product
from overt.distribute.repository import NewTarget, Repository, RepositoryContext
from overt.distribute.root import init_repository
from overt.distribute.verdicts import add_verdict
from overt.home import Home
from overt.keys.builders import register_first_builder
from overt.keys.registry import KeyRecord, Role
from overt.keys.signers import generate_file_key
from overt.server.runner import BackgroundServer
from overt.server.witness import create_app
from overt.tlog.cosignature import CosignatureSigner
from overt.tlog.note import parse_ed25519_vkey
from overt.tlog.policy import Group, Policy, PolicyWitness
from overt.tlog.witness import Witness

WITNESS_SEEDS = {"w1": b"\x31" * 32, "w2": b"\x32" * 32}  # benchmark-only witness keys


# --- nginx (the same set-up as tests/nginx.py; benchmarks do not import tests) ------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def nginx(root: Path, prefix: Path) -> Iterator[str]:
    """Debian's nginx serving ``root`` on a free loopback port, all its state in ``prefix``; yields the URL."""
    exe = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
    if exe is None:
        sys.exit("nginx is not installed (Debian package nginx): run 'make deps' as root")
    prefix.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    temp = "\n".join(
        f"{n}_temp_path {prefix / n};" for n in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;\n" if os.geteuid() == 0 else ""
    (prefix / "nginx.conf").write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} warn;\nevents {{ worker_connections 256; }}\n"
        f"http {{\ntypes {{ application/json json; }}\ndefault_type application/octet-stream;\n"
        f"access_log off;\n{temp}\nsendfile on;\n"
        f"server {{ listen 127.0.0.1:{port}; root {root.resolve()}; location / {{ try_files $uri =404; }} }}\n}}\n"
    )
    command = [exe, "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"nginx did not start: {(prefix / 'error.log').read_text()}")
            try:
                urllib.request.urlopen(f"{url}/probe", timeout=1)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.02)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- the world: home, witnesses, repository, auditors (as tests/distribute/world.py builds it) --------------


def add_key(h: Home, role: Role) -> KeyRecord:
    uri, key = generate_file_key(h.paths.keys, "ed25519")
    start = datetime.now(UTC) - timedelta(minutes=1)
    record = KeyRecord.create(key, role=role, jurisdiction="CH", valid_from=start, valid_until=None, uri=uri)
    h.registry.save(record)
    return record


def make_home(path: Path) -> Home:
    """A home in CH with a builder key and a release key that registered the home's builder id."""
    h = Home.init(path, origin="bench.example/log", jurisdiction="CH")
    add_key(h, Role.BUILDER)
    uri, key = generate_file_key(h.paths.keys, "ed25519")
    start = datetime.now(UTC) - timedelta(minutes=1)
    release = KeyRecord.create(
        key, role=Role.RELEASE, jurisdiction="CH", valid_from=start, valid_until=None, uri=uri
    )
    h.registry.add(release, conveyor_jurisdiction="CH")
    register_first_builder(
        h.builder_store(),
        h.signing_service(),
        release,
        builder_id=h.conveyor.provenance_builder_id,
        jurisdiction="CH",
    )
    return h


def start_witnesses(h: Home, state: Path, stack: ExitStack) -> None:
    """Two real witnesses over HTTP, a quorum of both, as the log's policy; the log published under it."""
    vkey = parse_ed25519_vkey((h.log.paths.public / "vkey").read_text().strip())
    entries = []
    for name, seed in WITNESS_SEEDS.items():
        witness = Witness(CosignatureSigner.create(f"{name}.bench.overt.example", seed), [vkey], state / name)
        server = stack.enter_context(BackgroundServer(create_app(witness)))
        entries.append(PolicyWitness(name=name, verifier=witness.signer.verifier(), url=server.url))
    names = tuple(WITNESS_SEEDS)
    h.log.save_policy(
        Policy(
            logs=h.log.policy().logs,
            witnesses=tuple(entries),
            groups=(Group(name="witnesses", threshold=len(names), members=names),),
            quorum="witnesses",
        )
    )
    h.log.publish()


def release(h: Home, data: bytes, auditors: list[KeyRecord]) -> ReleasedTarget:
    """``data`` released as demo 1.0 (provenance signed and logged), PASSED by each of ``auditors``."""
    digest = hashlib.sha256(data).hexdigest()
    provenance = Provenance(
        build_definition=BuildDefinition(
            build_type="https://overt.dev/build/bwrap/v1",
            external_parameters={"source": {"uri": "escrow/" + "ab" * 32}},
        ),
        run_details=RunDetails(
            builder=Builder(id=h.conveyor.provenance_builder_id),
            metadata=BuildMetadata(started_on="2026-11-28T10:00:00Z", finished_on="2026-11-28T10:01:00Z"),
        ),
    ).statement((ResourceDescriptor(name="demo.tar.gz", digest={"sha256": digest}),))
    builder = h.registry.current(Role.BUILDER, datetime.now(UTC))
    signed = h.signing_service().sign(builder, provenance)
    request = ProductRelease(
        artifact=data, file_name="demo.tar.gz", product="demo", version="1.0", provenance=signed.entry
    )
    released = release_product(ReleaseContext.of_home(Home(h.path)), request)
    for i, auditor in enumerate(auditors):
        summary = VerificationSummary(
            verifier=VsaVerifier(id=f"https://auditor-{i}.example/rebuilder"),
            time_verified=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            resource_uri=released.path,
            policy=ResourceDescriptor(uri=f"https://auditor.example/policy/v1#{i}"),
            verification_result=PASSED,
            verified_levels=("SLSA_BUILD_LEVEL_3",),
        )
        statement = summary.statement((ResourceDescriptor(name=released.path, digest={"sha256": digest}),))
        entry = h.signing_service().sign(auditor, statement).entry
        add_verdict(ReleaseContext.of_home(Home(h.path)), entry, target=released.path)
    return released


def policy_text(h: Home, customer: Path, url: str, auditors: list[KeyRecord]) -> str:
    keys = h.paths.public / "keys"
    builder = h.registry.current(Role.BUILDER, datetime.now(UTC))
    root_sha256 = hashlib.sha256((customer / "root.json").read_bytes()).hexdigest()
    auditor_files = json.dumps([str(keys / f"{a.keyid}.json") for a in auditors])
    return f"""
[repository]
url = "{url}/tuf"
root = "root.json"
root_sha256 = "{root_sha256}"

[log]
url = "{url}/log"
policy = "log.policy"

[auditors]
keys = {auditor_files}
threshold = {len(auditors)}

[builders]
ids = ["{h.conveyor.provenance_builder_id}"]
keys = ["{keys / f"{builder.keyid}.json"}"]
threshold = 1

[freshness]
max_cosignature_age_hours = 24

[[follow]]
product = "demo"
channel = "stable"
"""


# --- the measurements ----------------------------------------------------------------------------------------


def agent_update(agent: Path, policy: Path, expect: str) -> dict[str, float]:
    """One agent update in ``agent`` (pinned first if new): total and the agent's own split, in ms."""
    if not agent.exists():
        pin_policy(AgentLayout(agent), policy)
    start = time.perf_counter()
    outcome = update_endpoint(agent).outcomes[0]
    total = (time.perf_counter() - start) * 1000
    if outcome.status != expect:
        sys.exit(f"agent update: {outcome.status}, expected {expect}: {outcome.error}")
    return {"total_ms": total, **outcome.timings.to_dict()}


def ngclient_update(client: Path, url: str, root: bytes, path: str, download: bool) -> float:
    """The stock ngclient in ``client``: refresh, look ``path`` up, download it (cold) or find it cached."""
    (client / "metadata").mkdir(parents=True, exist_ok=True)
    (client / "targets").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    updater = Updater(
        metadata_dir=str(client / "metadata"),
        metadata_base_url=f"{url}/tuf/metadata/",
        target_dir=str(client / "targets"),
        target_base_url=f"{url}/tuf/targets/",
        bootstrap=root,
    )
    updater.refresh()
    info = updater.get_targetinfo(path)
    if info is None:
        sys.exit(f"ngclient: {path} is not in the repository")
    if download:
        updater.download_target(info, filepath=str(client / "targets" / "demo.tar.gz"))
    elif updater.find_cached_target(info, filepath=str(client / "targets" / "demo.tar.gz")) is None:
        sys.exit("ngclient: the warm client lost its cached target")
    return (time.perf_counter() - start) * 1000


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def interleave(rounds: int, *runs: Callable[[int], Any]) -> None:
    for i in range(rounds):
        for run in runs if i % 2 == 0 else reversed(runs):  # neither side always goes first
            run(i)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--mib", type=int, default=10)
    parser.add_argument("--targets", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="overt-bench-update-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        h = make_home(work / "conveyor")
        (work / "witnesses").mkdir()
        start_witnesses(h, work / "witnesses", stack)
        for role in (Role.TARGETS, Role.SNAPSHOT, Role.TIMESTAMP):
            add_key(h, role)
        init_repository(RepositoryContext.of_home(h), root_keys_dir=work / "root-keys", count=3, threshold=2)
        auditors = [add_key(h, Role.AUDITOR) for _ in range(2)]
        data = os.urandom(args.mib * 1024 * 1024)
        released = release(h, data, auditors)
        customer = work / "customer"
        customer.mkdir()
        root = (h.paths.public / "tuf" / "metadata" / "1.root.json").read_bytes()
        (customer / "root.json").write_bytes(root)
        (customer / "log.policy").write_bytes(h.log.policy().to_bytes())
        url = stack.enter_context(nginx(h.paths.public, work / "nginx"))
        policy = customer / "policy.toml"
        policy.write_text(policy_text(h, customer, url, auditors))

        cold_agent: list[dict[str, float]] = []
        cold_ng: list[float] = []
        interleave(
            args.rounds,
            lambda i: cold_agent.append(agent_update(work / f"agent-{i}", policy, INSTALLED)),
            lambda i: cold_ng.append(ngclient_update(work / f"ng-{i}", url, root, released.path, True)),
        )
        ratios = [a["total_ms"] / n for a, n in zip(cold_agent, cold_ng, strict=True)]

        built = time.perf_counter()
        with Repository.edit(RepositoryContext.of_home(Home(h.path))) as repo:
            repo.add_targets(
                [
                    NewTarget(path=f"products/p{i}/1.0/p{i}.tar.gz", data=f"p{i}".encode(), custom={})
                    for i in range(args.targets)
                ]
            )
        build_s = time.perf_counter() - built
        warm, ng = work / "agent-0", work / "ng-0"
        agent_update(warm, policy, CURRENT)  # catch up with the new metadata once
        ngclient_update(ng, url, root, released.path, False)
        warm_agent: list[dict[str, float]] = []
        warm_ng: list[float] = []
        interleave(
            args.rounds,
            lambda i: warm_agent.append(agent_update(warm, policy, CURRENT)),
            lambda i: warm_ng.append(ngclient_update(ng, url, root, released.path, False)),
        )
    figures = {
        "artifact_mib": args.mib,
        "rounds": args.rounds,
        "tuf_ms": median([a["tuf_ms"] for a in cold_agent]),
        "evidence_ms": median([a["evidence_ms"] for a in cold_agent]),
        "install_ms": median([a["install_ms"] for a in cold_agent]),
        "agent_update_ms": median([a["total_ms"] for a in cold_agent]),
        "ngclient_update_ms": median(cold_ng),
        "overhead_vs_ngclient_ratio": median(ratios),
        "bins_targets": args.targets,
        "bins_build_s": round(build_s, 1),
        "warm_agent_noop_ms": median([a["total_ms"] for a in warm_agent]),
        "warm_agent_evidence_ms": median([a["evidence_ms"] for a in warm_agent]),
        "warm_ngclient_noop_ms": median(warm_ng),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
