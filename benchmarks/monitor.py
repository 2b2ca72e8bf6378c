"""Monitor benchmark: ``python -m benchmarks.monitor [--entries N] [--workers W] [--cache DIR]``.

Builds (once) a conveyor home whose log holds N (default 1,000,000) realistic entries besides its own: per ten
entries one source escrow statement and two SLSA provenances signed by the builder key, three SLSA VSAs signed
by two test auditors, four tuf-metadata/v1 statements signed by the timestamp key (the timestamp is re-signed
far more often than anything else). One in a thousand provenances is released (a TUF target, published in one
repository change, logged like any other) and PASSED by both auditors; the other VSAs judge builds nobody
released. The log is cosigned by two real witnesses (test keys) over HTTP and written with overt.tlog's own
sequencer (tiles and bundles). Signing a million entries takes minutes, so the home is cached under
``$XDG_CACHE_HOME/overt-bench/monitor-<key>`` (``--cache`` to choose), keyed by N and the generator's
version, and reused by later runs (the output says whether it was).

Then, in one run, over loopback HTTP (Debian's nginx serving the home's ``public/``; Python's http.server
where nginx is not installed):

* the baseline: every entry bundle read through :class:`overt.tlog.client.LogClient` and every entry hashed
  into its leaf hash, in one process (``baseline_entries_per_s``);
* the monitor end to end (:func:`overt.auditor.monitor.monitor_once` on a fresh state: repository, checkpoint,
  every entry read, checked against the tree, judged, releases counted), with ``--workers`` processes
  (default 2) reading the log (``monitor_entries_per_s``).

The last line is one JSON object. The goal is at least 50,000 entries/s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The monitor's worker processes are spawned: each imports this module again (as ``__mp_main__``). They need
# none of it, and a user's monitor (``python -m overt``) makes them import nothing of the kind: skip it there.
if multiprocessing.parent_process() is None:
    from benchmarks.update import start_witnesses
    from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, sign_envelope
    from overt.attest.statement import ResourceDescriptor, Statement
    from overt.attest.vsa import PASSED, VerificationSummary, VsaVerifier
    from overt.auditor.monitor import monitor_config, monitor_once
    from overt.distribute.repository import NewTarget, Repository, RepositoryContext
    from overt.distribute.testbed import (
        add_key,
        conveyor_home,
        init_tuf,
        sample_provenance,
        trust_policy_text,
    )
    from overt.home import Home
    from overt.keys.jurisdiction import SOURCE_ESCROW_V1, TUF_METADATA_V1
    from overt.keys.registry import KeyRecord, Role
    from overt.keys.signers import KeySigner
    from overt.server.nginx import nginx_binary, nginx_server
    from overt.server.static import StaticSite
    from overt.tlog.client import LogClient, http_fetcher
    from overt.tlog.merkle import leaf_hash

GENERATOR = 1  # bump when the entries change: the cache key includes it
RELEASE_EVERY = 1000  # one provenance in this many is released
CHUNK = 10_000
_SIGNERS: dict[str, KeySigner] = {}


def _envelope(statement: Statement, signer: str) -> bytes:
    return sign_envelope(statement.to_bytes(), PAYLOAD_TYPE_IN_TOTO, [_SIGNERS[signer]]).to_bytes()


def _artifact(i: int) -> bytes:
    return f"build {i}\n".encode() * 8


def _entry(i: int) -> bytes:
    """Entry ``i`` of the generated stream (see the module docstring for the mix)."""
    slot, cycle = i % 10, i // 10
    digest = hashlib.sha256(f"{i}".encode()).hexdigest()
    if slot == 0:
        return _envelope(
            Statement(
                subject=(
                    ResourceDescriptor(name=f"source-{cycle}", digest={"sha256": digest, "dirHash": digest}),
                ),
                predicate_type=SOURCE_ESCROW_V1,
                predicate={"uri": f"escrow/{digest}", "size": 4096 + cycle % 100},
            ),
            "builder",
        )
    if slot in (1, 2):
        build = cycle * 2 + slot - 1
        subject = ResourceDescriptor(
            name="demo.tar.gz", digest={"sha256": hashlib.sha256(_artifact(build)).hexdigest()}
        )
        return _envelope(_PROVENANCE.statement((subject,)), "builder")
    if slot in (3, 4, 5):
        build = cycle * 2 + (slot == 4)  # an even build: PASSED by both auditors; an odd one: by one
        auditor = "auditor-b" if slot == 5 else "auditor-a"
        path = f"products/demo/{build // RELEASE_EVERY}.{build % RELEASE_EVERY}/demo.tar.gz"
        summary = VerificationSummary(
            verifier=VsaVerifier(id=f"https://{auditor}.example/rebuilder"),
            time_verified="2026-11-28T10:00:00Z",
            resource_uri=path,
            policy=ResourceDescriptor(uri=f"https://{auditor}.example/policy/v1#{slot}"),
            verification_result=PASSED,
            verified_levels=("SLSA_BUILD_LEVEL_3",),
        )
        sha = hashlib.sha256(_artifact(build)).hexdigest()
        return _envelope(summary.statement((ResourceDescriptor(name=path, digest={"sha256": sha}),)), auditor)
    version = 1000 + cycle * 4 + slot - 6
    return _envelope(
        Statement(
            subject=(ResourceDescriptor(name=f"{version}.timestamp.json", digest={"sha256": digest}),),
            predicate_type=TUF_METADATA_V1,
            predicate={
                "role": "timestamp",
                "version": version,
                "expires": "2027-01-01T00:00:00Z",
                "length": 469,
            },
        ),
        "timestamp",
    )


_PROVENANCE: Any = None


def _init(signers: dict[str, KeySigner], provenance: Any) -> None:
    global _PROVENANCE
    _SIGNERS.update(signers)
    _PROVENANCE = provenance


def _chunk(bounds: tuple[int, int]) -> list[bytes]:
    return [_entry(i) for i in range(*bounds)]


def _releases(h: Home, first: int, count: int) -> None:
    """Release every RELEASE_EVERY-th build of the stream as one repository change (logged)."""
    targets = []
    for build in range(0, count // 10 * 2, RELEASE_EVERY):
        index = first + (build // 2) * 10 + 1 + build % 2
        data = _artifact(build)
        version = f"{build // RELEASE_EVERY}.{build % RELEASE_EVERY}"
        path = f"products/demo/{version}/demo.tar.gz"
        envelope = hashlib.sha256(_entry(index - first)).hexdigest()  # Ed25519 signs deterministically
        custom = {
            "overt": {
                "kind": "product",
                "product": "demo",
                "channel": "stable",
                "version": version,
                "provenance": {"sha256": envelope, "logIndex": index},
            }
        }
        targets.append(NewTarget(path=path, data=data, custom=custom))
    with Repository.edit(RepositoryContext.of_home(Home(h.path))) as repo:
        repo.add_targets(targets)


def generate(where: Path, entries: int) -> None:
    """The cached world (module docstring): a conveyor home, its log, repository and auditors."""
    h = conveyor_home(where / "conveyor", origin="bench.overt.example/log")
    auditors = [add_key(h, Role.AUDITOR) for _ in range(2)]
    init_tuf(h, where / "root-keys")
    now = datetime.now(UTC)
    records = {
        "builder": h.registry.current(Role.BUILDER, now),
        "timestamp": h.registry.current(Role.TIMESTAMP, now),
        "auditor-a": auditors[0],
        "auditor-b": auditors[1],
    }
    signers = {name: h.signer_for(r) for name, r in records.items()}
    _init(signers, sample_provenance(h))
    with ExitStack() as stack:
        start_witnesses(h, where / "witnesses", stack)
        log = h.log.open(durable=False)
        try:
            first = log.tree_size
            bounds = [(i, min(entries, i + CHUNK)) for i in range(0, entries, CHUNK)]
            context = multiprocessing.get_context("fork")
            with context.Pool(2, initializer=_init, initargs=(signers, sample_provenance(h))) as pool:
                for n, batch in enumerate(pool.imap(_chunk, bounds)):
                    log.add(batch)
                    print(f"generated {(n + 1) * CHUNK} entries", file=sys.stderr, flush=True)
        finally:
            log.close()
        _releases(h, first, entries)
        assert h.log.publish().published
    (where / "auditors.json").write_text(json.dumps([a.keyid for a in auditors]))


def _policy(h: Home, where: Path, url: str) -> Path:
    customer = where / "customer"
    customer.mkdir(exist_ok=True)
    shutil.copy(h.paths.public / "tuf" / "metadata" / "1.root.json", customer / "root.json")
    (customer / "log.policy").write_bytes(h.log.policy().to_bytes())
    keyids = json.loads((where / "auditors.json").read_text())
    auditors: Sequence[KeyRecord] = [h.registry.get(k) for k in keyids]
    text = trust_policy_text(h, url=url, root=customer / "root.json", auditors=auditors, threshold=2)
    (customer / "policy.toml").write_text(text)
    return customer / "policy.toml"


def baseline(url: str, policy: Any, size: int) -> float:
    """Seconds to read every entry bundle over HTTP and hash every entry (one process)."""
    client = LogClient(http_fetcher(url), policy)
    t0 = time.perf_counter()
    count = 0
    for _, entry in client.iter_entries(size):
        leaf_hash(entry)
        count += 1
    assert count == size
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    default_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "overt-bench"
    ap.add_argument("--cache", type=Path, default=default_cache)
    args = ap.parse_args()
    key = hashlib.sha256(f"monitor v{GENERATOR} entries={args.entries}".encode()).hexdigest()[:16]
    where = args.cache / f"monitor-{key}"
    cached = (where / "auditors.json").is_file()
    t0 = time.perf_counter()
    if not cached:
        shutil.rmtree(where, ignore_errors=True)
        where.mkdir(parents=True)
        generate(where, args.entries)
    generated = time.perf_counter() - t0
    h = Home(where / "conveyor")
    with ExitStack() as stack:
        state = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if nginx_binary() is not None:
            url, server = stack.enter_context(nginx_server(h.paths.public, state / "nginx")).url, "nginx"
        else:
            url, server = stack.enter_context(StaticSite(h.paths.public)).url, "python http.server"
        policy = _policy(h, where, url)
        size = LogClient(http_fetcher(url + "/log"), h.log.policy()).update().checkpoint.checkpoint.tree_size
        base = baseline(url + "/log", h.log.policy(), size)
        config = monitor_config(url + "/log", policy=policy, state=state / "monitor", workers=args.workers)
        t1 = time.perf_counter()
        report = monitor_once(config)
        took = time.perf_counter() - t1
    print(
        f"monitor: {report.entries_read} entries in {took:.1f} s ({report.entries_read / took:,.0f}/s), "
        f"{len(report.alerts)} alert(s), {len(report.pending)} pending; baseline read+hash {size / base:,.0f}/s",
        file=sys.stderr,
    )
    print(
        json.dumps(
            {
                "monitor_entries_per_s": round(report.entries_read / took),
                "entries": report.entries_read,
                "monitor_seconds": round(took, 2),
                "baseline_entries_per_s": round(size / base),
                "baseline_seconds": round(base, 2),
                "workers": args.workers,
                "alerts": len(report.alerts),
                "pending": len(report.pending),
                "cached_log": cached,
                "generate_seconds": round(generated, 1),
                "cache": str(where),
                "server": f"{server} on 127.0.0.1",
            }
        )
    )


if __name__ == "__main__":
    main()
