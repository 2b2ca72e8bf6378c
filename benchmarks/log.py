"""Log append and verification benchmark: ``python -m benchmarks.log [--entries N] [--dir D]``.

Grows a fresh SQLite-backed log to N (default 1,000,000) entries of 1 KiB, durable and integrated (tiles and
bundles fsynced, store committed, checkpoint signed after every batch), then appends 100-byte entries to the
grown log, then times inclusion-proof verification. RSS is sampled along the way to show memory stays flat.
The last line of output is one JSON object of figures.

No peer runs on this machine (Tessera and Trillian need Go or MySQL, which we do not install); DESIGN.md's
reference figure for Tessera POSIX is ~10,000 entries/s on NVMe with up to 7 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from overt.home import Home, LogConfig
from overt.tlog.merkle import leaf_hash, verify_inclusion


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--small-entries", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="overt-bench-", dir=args.dir))
    try:
        home = Home.init(base / "home", config=LogConfig(origin="bench.overt.example/log"))
        log = home.log.open()
        rss_samples: list[tuple[int, float]] = []
        seed = os.urandom(16)
        filler = os.urandom(1024 - 24)

        def run(count: int, size: int, tag: bytes) -> float:
            done = 0
            t0 = time.perf_counter()
            last_report = t0
            while done < count:
                n = min(args.batch, count - done)
                if size >= 64:
                    batch = [
                        seed + tag + (done + i).to_bytes(6, "big") + filler[: size - 24] for i in range(n)
                    ]
                else:
                    raise ValueError("entries must be at least 64 bytes")
                log.add(batch)
                log.sign()
                done += n
                now = time.perf_counter()
                if now - last_report > 5:
                    last_report = now
                    rss_samples.append((log.tree_size, rss_mb()))
                    print(
                        f"  {log.tree_size:>9} entries, {done / (now - t0):,.0f}/s, rss {rss_mb():.0f} MiB",
                        file=sys.stderr,
                    )
            return count / (time.perf_counter() - t0)

        print(f"appending {args.entries:,} entries of 1 KiB ...", file=sys.stderr)
        rate_1k = run(args.entries, 1024, b"K")
        rss_samples.append((log.tree_size, rss_mb()))
        print(f"appending {args.small_entries:,} entries of 100 B to the grown log ...", file=sys.stderr)
        rate_100 = run(args.small_entries, 100, b"S")
        rss_samples.append((log.tree_size, rss_mb()))

        size = log.tree_size
        signed = log.sign()
        root = signed.checkpoint.root_hash
        index = size // 3
        entry = log.tiles.entry(index)
        proof = log.tiles.inclusion_proof(index, size)
        leaf = leaf_hash(entry)
        reps = 20_000
        t0 = time.perf_counter()
        for _ in range(reps):
            verify_inclusion(index, size, leaf, proof, root)
        verify_us = (time.perf_counter() - t0) / reps * 1e6
        log.close()
        disk_mb = sum(f.stat().st_size for f in (base / "home").rglob("*") if f.is_file()) / 2**20
        first_rss = rss_samples[0][1]
        figures = {
            "append_entries_per_s": round(rate_1k),
            "append_entries_per_s_100b": round(rate_100),
            "log_size": size,
            "batch_size": args.batch,
            "verify_inclusion_us": round(verify_us, 2),
            "inclusion_proof_hashes": len(proof),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_mb_first_sample": round(first_rss, 1),
            "rss_mb_at_end": round(rss_samples[-1][1], 1),
            "rss_growth_mb": round(rss_samples[-1][1] - first_rss, 1),
            "disk_mb": round(disk_mb),
            "durable": True,
            "store": "sqlite",
            "cores": os.cpu_count(),
            "peer": "none runs here; Tessera POSIX reference ~10000/s (DESIGN.md)",
        }
        print(json.dumps(figures))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
