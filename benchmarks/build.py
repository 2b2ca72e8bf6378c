"""Sandbox overhead benchmark: ``python -m benchmarks.build [--runs N]``.

Builds the tomli 2.0.1 sdist (the corpus case: flit_core 3.6.0 as the only toolchain input, TZ=UTC) N times in
the bubblewrap sandbox and N times directly on the host with the same steps, environment, source tree and
toolchain, interleaved in one run, and reports the median wall time of each and their ratio
(``sandbox_overhead_ratio`` is the median of per-pair ratios, each sandbox run paired with the host run right
after it, which cancels the machine's speed drift; goal < 1.05). Both paths include materialising the snapshot and hashing the
outputs; each run's wheel is checked against the upstream wheel's sha256. The corpus is fetched from PyPI with
pip (cached, sha256-checked) like the tests do. The last line is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from tests.build.test_corpus import RECIPE as CORPUS_RECIPE
from tests.conftest import CORPUS, fetch_corpus

from overt.build.conveyor import REFERENCE, build_run
from overt.build.recipe import parse_recipe
from overt.source.escrow import add_recipe, read_source
from overt.source.snapshot import canonical_tar

FLIT = "flit_core-3.6.0-py3-none-any.whl"
RECIPE = CORPUS_RECIPE.format(tz="UTC", flit=FLIT, flit_sha=CORPUS[FLIT])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=21)
    args = ap.parse_args()
    corpus = fetch_corpus()
    files = read_source(corpus["tomli-2.0.1.tar.gz"])
    snapshot = canonical_tar(add_recipe(files, RECIPE.encode(), max(f.mtime for f in files)))
    recipe = parse_recipe(RECIPE.encode())
    toolchain = {
        "/toolchain/flit_core-3.6.0-py3-none-any.whl": corpus["flit_core-3.6.0-py3-none-any.whl"].read_bytes()
    }
    want = CORPUS["tomli-2.0.1-py3-none-any.whl"]
    times: dict[bool, list[float]] = {True: [], False: []}
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    for i in range(args.runs + 1):
        for sandboxed in (True, False):
            root = Path(tempfile.mkdtemp(prefix="overt-bench-build-", dir=base))
            start = time.perf_counter()
            outputs = build_run(snapshot, recipe, toolchain, root, REFERENCE, sandboxed=sandboxed)
            digest = hashlib.sha256(outputs["dist/tomli-2.0.1-py3-none-any.whl"].read_bytes()).hexdigest()
            elapsed = time.perf_counter() - start
            shutil.rmtree(root)
            if digest != want:
                raise SystemExit(
                    f"run {i} ({'sandbox' if sandboxed else 'host'}) did not reproduce the upstream wheel"
                )
            if i > 0:  # the first round warms caches
                times[sandboxed].append(elapsed)
    sandbox_s, host_s = statistics.median(times[True]), statistics.median(times[False])
    # The machine's speed drifts between runs; pairing each sandbox run with the host run right after it
    # and taking the median of the per-pair ratios cancels most of that drift.
    pair_ratio = statistics.median(a / b for a, b in zip(times[True], times[False], strict=True))
    print(
        f"tomli wheel: sandbox {sandbox_s * 1000:.1f} ms, host {host_s * 1000:.1f} ms (median of {args.runs})"
    )
    print(
        json.dumps(
            {
                "runs": args.runs,
                "tomli_build_sandbox_s": round(sandbox_s, 4),
                "tomli_build_host_s": round(host_s, 4),
                "sandbox_overhead_ratio": round(pair_ratio, 3),
                "median_time_ratio": round(sandbox_s / host_s, 3),
                "reproduced_upstream_wheel": True,
            },
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    main()
