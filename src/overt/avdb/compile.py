"""Compiling a database's YARA rules inside the build sandbox.

The compiled rules are the one part of a database that is not copied from the escrowed sources, so they are
made the way products are: in the bubblewrap sandbox of :mod:`overt.build.sandbox` (no network, a clean
environment, a read-only system), by Debian's ``/usr/bin/python3`` with only the yara-x package bound in
read-only. Two sandboxes compile at once, in separate processes; the database carries the result only if the
two agree byte for byte (else endpoints compile from source). The sandbox's compiler must also agree with the
in-process one (:func:`overt.avdb.package.serialise`), which is what an endpoint runs when it rebuilds a
database from a delta: tests check both.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yara_x

from overt.avdb.rules import EXTERNALS
from overt.build.sandbox import BUILD_DIR, run_steps

PYTHON = "/usr/bin/python3"
YARA_X_MOUNT = "/toolchain/python/yara_x"
TIMEOUT_S = 600.0
MAX_OUTPUT = 256 << 20

# Runs inside the sandbox under Debian's python3, which has nothing of overt: it mirrors
# overt.avdb.rules.new_compiler (the externals, as empty-string globals) and package.compile_sources (sources
# added in path order, each under its path as origin), in the same order. A test checks they give the same bytes.
SCRIPT = """
import json, sys
sys.path.insert(0, "/toolchain/python")
import yara_x
spec = json.load(open("spec.json", encoding="utf-8"))
compiler = yara_x.Compiler()
for name in spec["globals"]:
    compiler.define_global(name, "")
for origin, file in spec["sources"]:
    compiler.add_source(open(file, encoding="utf-8").read(), origin=origin)
with open("out/rules.yarx", "wb") as out:
    compiler.build().serialize_into(out)
"""


def yara_x_package() -> Path:
    return Path(yara_x.__file__).parent


def compile_in_sandbox(sources: Mapping[str, str]) -> bytes:
    """Serialised rules for ``sources``, compiled in a fresh sandbox; BuildError if the compiler fails."""
    with tempfile.TemporaryDirectory(prefix="overt-avdb-compile-") as tmp:
        build = Path(tmp) / "build"
        (build / "src").mkdir(parents=True)
        (build / "out").mkdir()
        listed = []
        for n, (origin, text) in enumerate(sorted(sources.items())):
            (build / "src" / f"{n}.yar").write_text(text, encoding="utf-8")
            listed.append([origin, f"src/{n}.yar"])
        (build / "spec.json").write_text(json.dumps({"globals": list(EXTERNALS), "sources": listed}))
        (build / "compile.py").write_text(SCRIPT)
        run_steps(
            [[PYTHON, "-I", "-B", f"{BUILD_DIR}/compile.py"]],
            build_dir=build,
            toolchain={YARA_X_MOUNT: yara_x_package()},
            env={"TZ": "UTC", "LC_ALL": "C.UTF-8"},
            timeout=TIMEOUT_S,
            max_output_bytes=MAX_OUTPUT,
            log_path=Path(tmp) / "compile.log",
        )
        return (build / "out" / "rules.yarx").read_bytes()


def compiled_if_deterministic(sources: Mapping[str, str]) -> bytes | None:
    """Serialised rules if two sandboxed compilations, run at once, agree byte for byte, else None."""
    if not sources:
        return None
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(compile_in_sandbox, [sources, sources])
    return first if first == second else None
