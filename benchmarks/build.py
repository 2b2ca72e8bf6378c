"""Sandbox overhead benchmark: ``python -m benchmarks.build [--runs N]``.

Builds the tomli 2.0.1 sdist with the tomli example of docs/recipes.md (the corpus case: flit_core 3.6.0 as the
only toolchain input, TZ=UTC) N times in
the bubblewrap sandbox and N times directly on the host with the same steps, environment, source tree and
toolchain, interleaved in one run, and reports the median wall time of each and their ratio
(``sandbox_overhead_ratio`` is the median of per-pair ratios, each sandbox run paired with the host run right
after it, which cancels the machine's speed drift; goal < 1.05). Both paths include materialising the snapshot and hashing the
outputs; each run's wheel is checked against the upstream wheel's sha256. The three corpus files are fetched
from PyPI with pip into the tests' cache (``$OVERT_CORPUS_CACHE``, default ``~/.cache/overt-test-corpus``) and
checked against their published sha256 (../shared/corpus/pypi/README.md). The last line is one JSON object of
figures. Imports nothing from tests/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from overt.build.recipe import parse_recipe
from overt.build.run import reference_variation, run_once
from overt.source.escrow import add_recipe, read_source
from overt.source.snapshot import canonical_tar

FLIT = "flit_core-3.6.0-py3-none-any.whl"
SDIST = "tomli-2.0.1.tar.gz"
WHEEL = "tomli-2.0.1-py3-none-any.whl"
# name: (pip requirement, pip mode, published sha256)
CORPUS = {
    FLIT: ("flit_core==3.6.0", "--only-binary", "7661029dedadd456c1d94e0a4765222447f00808bb1fcc767e4270a883ba8b4c"),
    SDIST: ("tomli==2.0.1", "--no-binary", "de526c12914f0c550d15924c62d72abc48d6fe7364aa87328337a31007fe8a4f"),
    WHEEL: ("tomli==2.0.1", "--only-binary", "939de3e7a6161af0c887ef91b7d41a53e7c5a1ca976325f429cb46ea9bc30ecc"),
}  # fmt: skip
DOC = Path(__file__).parents[1] / "docs" / "recipes.md"


def tomli_recipe() -> str:
    """The tomli example of docs/recipes.md, which tests/build/test_corpus.py proves reproduces upstream."""
    found = re.search(r"```toml\n# example: tomli\n(.*?)```", DOC.read_text(), flags=re.S)
    if found is None:
        raise SystemExit(f"{DOC} has no tomli example")
    return found.group(1)


def fetch(name: str) -> Path:
    """One corpus file in the cache, fetched with pip if absent, checked against its published sha256."""
    spec, mode, digest = CORPUS[name]
    cache = Path(os.environ.get("OVERT_CORPUS_CACHE", Path.home() / ".cache" / "overt-test-corpus"))
    if not (cache / name).exists():
        cache.mkdir(parents=True, exist_ok=True)
        args = ["download", "-q", "--no-deps", mode, ":all:", spec, "-d", str(cache)]
        subprocess.run([sys.executable, "-m", "pip", *args], check=True, capture_output=True, timeout=300)
    if hashlib.sha256((cache / name).read_bytes()).hexdigest() != digest:
        raise SystemExit(f"{cache / name} does not have the published sha256 {digest}; delete it and rerun")
    return cache / name


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=21)
    args = ap.parse_args()
    text = tomli_recipe().encode()
    files = read_source(fetch(SDIST))
    snapshot = canonical_tar(add_recipe(files, text, max(f.mtime for f in files)))
    recipe = parse_recipe(text)
    if recipe.toolchain[0].sha256 != CORPUS[FLIT][2]:
        raise SystemExit(f"the tomli example of {DOC} no longer pins {FLIT}")
    toolchain = {f"/toolchain/{FLIT}": fetch(FLIT).read_bytes()}
    want = hashlib.sha256(fetch(WHEEL).read_bytes()).hexdigest()
    variation = reference_variation(recipe)
    times: dict[bool, list[float]] = {True: [], False: []}
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    for i in range(args.runs + 1):
        for sandboxed in (True, False):
            root = Path(tempfile.mkdtemp(prefix="overt-bench-build-", dir=base))
            start = time.perf_counter()
            run = run_once(
                snapshot, recipe, toolchain=toolchain, root=root, variation=variation, sandboxed=sandboxed
            )
            digest = next(o.sha256 for o in run.outputs if o.name == f"dist/{WHEEL}")
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
