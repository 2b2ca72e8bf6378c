"""Endpoint update benchmark: ``python -m benchmarks.update [--rounds N] [--mib N] [--targets N]``.

In one run on this machine, with everything real (a conveyor home whose log is cosigned by two witnesses over
HTTP, a TUF repository, two test auditors whose PASSED VSAs are logged, Debian's nginx serving ``public/`` on
127.0.0.1):

* releases a 10 MiB artifact;
* measures, interleaved over several rounds, a cold ``overt agent update`` (a fresh agent directory pinned to
  the same policy; split into TUF, evidence verification and install, as the agent times them on the
  updating thread: ``evidence_ms`` is what the update waits for the evidence checks, ``evidence_work_ms`` how
  long they ran, most of it while the TUF client hashes the download) and a cold
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
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tuf.ngclient import Updater

from overt.distribute.agentdir import AgentLayout, pin_policy
from overt.distribute.checks import ReleaseContext
from overt.distribute.endpoint import CURRENT, INSTALLED, update_endpoint
from overt.distribute.release import ProductRelease, ReleasedTarget, release_product
from overt.distribute.repository import NewTarget, Repository, RepositoryContext
from overt.distribute.testbed import (
    TEST_WITNESS_SEEDS,
    add_key,
    conveyor_home,
    init_tuf,
    sign_provenance,
    trust_policy_text,
    vouch,
    witness_with_test_key,
    witnessed_policy,
)
from overt.home import Home
from overt.keys.registry import KeyRecord, Role
from overt.server.nginx import nginx_binary, nginx_server
from overt.server.runner import BackgroundServer
from overt.server.witness import create_app
from overt.tlog.policy import PolicyWitness


def start_witnesses(h: Home, state: Path, stack: ExitStack) -> None:
    """Two real witnesses over HTTP (test keys), a quorum of both, as the log's policy; the log published."""
    entries = []
    for name in TEST_WITNESS_SEEDS:
        witness = witness_with_test_key(name, h, state / name)
        server = stack.enter_context(BackgroundServer(create_app(witness)))
        entries.append(PolicyWitness(name=name, verifier=witness.signer.verifier(), url=server.url))
    h.log.save_policy(witnessed_policy(h, entries, len(entries)))
    h.log.publish()


def release(h: Home, data: bytes, auditors: list[KeyRecord]) -> ReleasedTarget:
    """``data`` released as demo 1.0 (provenance signed and logged), PASSED by each of ``auditors``."""
    signed = sign_provenance(h, data, "demo.tar.gz")
    request = ProductRelease(
        artifact=data, file_name="demo.tar.gz", product="demo", version="1.0", provenance=signed.entry
    )
    released = release_product(ReleaseContext.of_home(Home(h.path)), request)
    vouch(h, auditors, path=released.path, sha256=released.sha256)
    return released


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
        h = conveyor_home(work / "conveyor", origin="bench.example/log")
        (work / "witnesses").mkdir()
        start_witnesses(h, work / "witnesses", stack)
        init_tuf(h, work / "root-keys")
        auditors = [add_key(h, Role.AUDITOR) for _ in range(2)]
        data = os.urandom(args.mib * 1024 * 1024)
        released = release(h, data, auditors)
        customer = work / "customer"
        customer.mkdir()
        root = (h.paths.public / "tuf" / "metadata" / "1.root.json").read_bytes()
        (customer / "root.json").write_bytes(root)
        (customer / "log.policy").write_bytes(h.log.policy().to_bytes())
        if nginx_binary() is None:
            sys.exit("nginx is not installed (Debian package nginx): run 'make deps' as root")
        url = stack.enter_context(nginx_server(h.paths.public, work / "nginx")).url
        policy = customer / "policy.toml"
        policy.write_text(
            trust_policy_text(
                h, url=url, root=customer / "root.json", auditors=auditors, threshold=len(auditors)
            )
        )

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
        "evidence_work_ms": median([a.get("evidence_work_ms", 0.0) for a in cold_agent]),
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
