"""Rule-auditor benchmark: ``python -m benchmarks.audit [--rules N] [--hex-rules N] [--budget-s S] [--real-budget-s S]``.

In one run on this machine:

* speed: audits the 10,000-rule tree of :mod:`benchmarks.avdb` (``tree()``), every rule new, so the canaries run
  on all of them (``rules_per_s``, ``seconds``); and a tree of hex-heavy rules (long hex strings with wildcards
  and jumps, as shellcode rules have them; ``hex_rules_per_s``). A 1,000-rule prefix is audited first; when it
  projects the full tree past ``--budget-s``, the full tree is skipped and the figures are the prefix's, saying so
  (``speed_rules``). Per-check timings (``check_s``) come from the parts' own entry points on the prefix, where
  they exist;
* real collections: when ``../shared/corpus/yara`` (or ``$OVERT_YARA_CORPUS``) exists, imports each collection
  with ``overt.avdb.importer.import_tree`` into a temporary rule tree (or, until the importer exists, reads its
  ``.yar`` files as they are, leaving out include-only index files and not counting missing overt metadata, and
  says so in ``real_import``), audits it in chunks of about 400 rules, each a spread over the collection,
  alternating between collections until ``--real-budget-s`` is spent (``real_sampled`` then says how many chunks
  were audited; a chunk under way is finished), and reports ``real_rules_audited``, ``real_blocking_rate`` (rules with
  any blocking finding), ``real_hunting_rate`` (rules with a blocking document-hunting finding),
  ``real_notice_blocking`` (rules with a blocking compiler notice) and ``real_flags``, every rule with a
  blocking finding that is left (collection, file, rule, its checks, how many findings, some evidence). Absent, ``real_skipped`` says why;
* the project's own disguised set (``tests/avdb/disguised/``): ``disguised_detection_rate`` (hunting cases whose
  every hunting rule gets a blocking document-hunting finding; ``disguised_static_detection_rate`` the same
  without counting canary hits), ``disguised_cases``, ``benign_false_flags``
  (benign cases with any blocking finding), and the names of the cases that fail.

The last line is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.avdb.test_disguise import (
    BENIGN,
    HUNTING,
    HUNTING_CHECKS,
    benign_blocks,
    case_name,
    cases,
    hunting_misses,
)

from benchmarks.avdb import snapshot, tree
from overt.avdb.audit import audit
from overt.avdb.rules import RuleSet, load_rules
from overt.errors import Error
from overt.source.snapshot import FILE, SnapshotFile

BLOCKING = "blocking"
REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("OVERT_YARA_CORPUS", REPO.parent / "shared" / "corpus" / "yara"))
COLLECTIONS = {"yara-rules-rules": "yara-rules", "reversinglabs-yara-rules": "reversinglabs"}
PREFIX_RULES = 1000


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def hex_rule(n: int, rng: random.Random) -> str:
    """A rule with five 48-byte hex strings, wildcards and a jump in each, as shellcode and packer rules have."""
    patterns = []
    for k in range(5):
        cells = [f"{b:02X}" for b in rng.randbytes(48)]
        for i in rng.sample(range(2, 46), 4):
            cells[i] = "??"
        cells.insert(24, f"[{rng.randint(1, 4)}-{rng.randint(5, 12)}]")
        patterns.append(f"$h{k} = {{ {' '.join(cells)} }}")
    meta = (
        f'id = "BENCH-HEX-{n}"\n    version = "1"\n    author = "bench"\n    date = "2026-11-28"\n'
        f'    description = "synthetic shellcode family {n}"\n    reference = "https://example.org/hex/{n}"'
    )
    body = "\n    ".join(patterns)
    return (
        f"rule Bench_Hex_{n} {{\n  meta:\n    {meta}\n  strings:\n    {body}\n"
        f"  condition:\n    uint16(0) == 0x5A4D and 2 of them\n}}\n"
    )


def hex_tree(n_rules: int) -> dict[str, str]:
    rng = random.Random(13)
    rules = [hex_rule(i, rng) for i in range(n_rules)]
    return {f"yara/hex-{k:02d}.yar": "".join(rules[k::10]) for k in range(10)}


def audited(rules: RuleSet) -> tuple[int, float]:
    report, seconds = timed(lambda: audit(rules))
    return report.rules_audited, seconds


def check_timings(rules: RuleSet) -> dict[str, float | str]:
    """Seconds each part's entry point takes over ``rules`` on its own (where the part exists yet)."""
    out: dict[str, float | str] = {}
    yara = list(rules.yara)

    def patterns() -> object:
        from overt.avdb.markings import load_markings

        module = "patterns" if importlib.util.find_spec("overt.avdb.patterns") else "markings"
        check_patterns = importlib.import_module(f"overt.avdb.{module}").check_patterns
        return check_patterns(yara, load_markings())

    def checks() -> object:
        from overt.avdb.checks import check_rule

        return [check_rule(r) for r in yara]

    def canaries() -> object:
        from overt.avdb.canary_check import check_canaries

        return check_canaries(rules, {r.id for r in yara})

    for name, fn in (("patterns", patterns), ("checks", checks), ("canaries", canaries)):
        try:
            out[name] = round(timed(fn)[1], 2)
        except Exception as e:  # a part still being written: say so instead of stopping the benchmark
            out[name] = f"unavailable: {type(e).__name__}: {str(e)[:120]}"
    return out


def speed(n_rules: int, n_hex: int, budget_s: float) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    prefix = load_rules(snapshot(tree(min(PREFIX_RULES, n_rules), 0)), strict=False)
    n, seconds = audited(prefix)
    figures["speed_rules"], figures["seconds"] = n, round(seconds, 2)
    projected = seconds * n_rules / max(n, 1)
    if n_rules > n and projected <= budget_s:
        files = tree(n_rules, 0)
        rules, load_s = timed(lambda: load_rules(snapshot(files), strict=False))
        n, seconds = audited(rules)
        figures.update(speed_rules=n, seconds=round(seconds, 2), load_seconds=round(load_s, 2))
    elif n_rules > n:
        figures["speed_note"] = (
            f"the {n_rules}-rule tree was not audited: the {n}-rule prefix took {seconds:.1f} s, "
            f"projecting {projected:.0f} s, over the {budget_s:.0f} s budget"
        )
    figures["rules_per_s"] = round(n / seconds, 1)
    print(f"audited {n} rules in {seconds:.1f} s: {n / seconds:.0f} rules/s", flush=True)
    figures["check_s"] = check_timings(prefix)
    hexes = load_rules(snapshot(hex_tree(n_hex)), strict=False)
    n, seconds = audited(hexes)
    figures.update(hex_rules=n, hex_seconds=round(seconds, 2), hex_rules_per_s=round(n / seconds, 1))
    print(f"audited {n} hex-heavy rules in {seconds:.1f} s", flush=True)
    return figures


def tree_files(root: Path) -> list[SnapshotFile]:
    return [
        SnapshotFile(path=p.relative_to(root).as_posix(), kind=FILE, data=p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    ]


def imported(src: Path, dest: Path, source: str) -> tuple[list[SnapshotFile], str]:
    """The collection as an overt rule tree, and how it was made."""
    try:
        from overt.avdb.importer import import_tree
    except ImportError:
        files = []
        for p in sorted(src.rglob("*")):
            if p.suffix not in (".yar", ".yara") or p.name.endswith("_index.yar"):
                continue
            try:
                p.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                continue
            files.append(SnapshotFile(path=p.relative_to(src).as_posix(), kind=FILE, data=p.read_bytes()))
        return files, "fallback: .yar files read as they are (overt.avdb.importer not available)"
    report, seconds = timed(lambda: import_tree(src, dest, source=source))
    return tree_files(dest), (
        f"import_tree in {seconds:.1f} s: {report.rules_written} of {report.rules_read} rules imported, "
        f"{len(report.left_out)} files or rules left out, {len(report.skipped)} files skipped"
    )


def chunks(files: list[SnapshotFile], size: int) -> list[list[SnapshotFile]]:
    """The tree's rule files dealt into chunks of about ``size`` rules, each a spread over the whole tree (chunk
    k holds every n-th file from the k-th), with the tree's other files (settings) in every chunk."""
    rule_files = [f for f in files if f.path.endswith((".yar", ".yara"))]
    others = [f for f in files if not f.path.endswith((".yar", ".yara"))]
    rules = sum(f.data.count(b"rule ") for f in rule_files)  # a cheap over-estimate, for the chunk count only
    n = max(1, min(len(rule_files), rules // size))
    return [others + rule_files[k::n] for k in range(n)]


def audit_chunk(
    source: str, files: list[SnapshotFile], *, fallback: bool
) -> tuple[list[int], list[dict[str, str]]]:
    """[rules audited, with a blocking finding, with a blocking hunting finding, with a blocking notice], flags."""
    report = audit(load_rules(files, strict=False))
    per_rule: dict[str, list[Any]] = {}
    for f in report.findings:
        if f.severity == BLOCKING and not (fallback and f.check == "missing-metadata"):
            per_rule.setdefault(f.rule_id, []).append(f)
    counts = [
        report.rules_audited,
        len(per_rule),
        sum(any(f.check in HUNTING_CHECKS for f in fs) for fs in per_rule.values()),
        sum(any(f.check.startswith(("notice:", "performance:")) for f in fs) for fs in per_rule.values()),
    ]
    flags = [
        {
            "collection": source,
            "file": fs[0].file,
            "rule": fs[0].rule,
            "checks": sorted({f.check for f in fs}),
            "findings": len(fs),
            "evidence": sorted({f.evidence[:120] for f in fs})[:3],
        }
        for fs in per_rule.values()
    ]
    return counts, flags


def real_collections(budget_s: float, chunk_rules: int) -> dict[str, Any]:
    """Both collections imported, then audited chunk by chunk, alternating between them, until all are done or
    the budget is spent (then the figures are over the chunks audited, and ``real_sampled`` says how many)."""
    if not CORPUS.is_dir():
        return {"real_skipped": f"no rule corpus at {CORPUS} (set OVERT_YARA_CORPUS to audit one)"}
    how: dict[str, str] = {}
    work = Path(tempfile.mkdtemp(prefix="overt-bench-audit-"))
    queue: list[tuple[str, list[SnapshotFile]]] = []
    planned: dict[str, int] = {}
    try:
        for folder, source in COLLECTIONS.items():
            if not (CORPUS / folder).is_dir():
                how[source] = f"absent: {CORPUS / folder}"
                continue
            try:
                files, how[source] = imported(CORPUS / folder, work / source, source)
            except Error as e:
                how[source] = f"not imported: {e}"
                continue
            parts = chunks(files, chunk_rules)
            planned[source] = len(parts)
            queue += [(source, part) for part in parts]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # Alternate between collections (chunk 1 of each, then chunk 2...), so a spent budget samples them all.
    rank: dict[str, int] = {}
    ranked = []
    for source, part in queue:
        rank[source] = rank.get(source, -1) + 1
        ranked.append((rank[source], source, part))
    ranked.sort(key=lambda item: item[0])
    totals, flags, done = [0, 0, 0, 0], [], dict.fromkeys(planned, 0)
    start = time.perf_counter()
    for _, source, part in ranked:
        if time.perf_counter() - start > budget_s:
            break
        counts, found = audit_chunk(source, part, fallback=how[source].startswith("fallback"))
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        flags += found
        done[source] += 1
    seconds = time.perf_counter() - start
    audited_n, blocking_n, hunting_n, notice_n = totals
    print(f"real collections: audited {audited_n} rules in {seconds:.1f} s", flush=True)
    sampled = {s: f"{done[s]} of {planned[s]} chunks" for s in planned if done[s] < planned[s]}
    return {
        "real_import": how,
        "real_chunks": planned,
        "real_sampled": sampled or None,
        "real_seconds": round(seconds, 1),
        "real_rules_audited": audited_n,
        "real_blocking_rate": round(blocking_n / audited_n, 4) if audited_n else None,
        "real_hunting_rate": round(hunting_n / audited_n, 4) if audited_n else None,
        "real_notice_blocking": notice_n,
        "real_flags": flags,
    }


def disguised() -> dict[str, Any]:
    missed = [case_name(c) for c in cases(HUNTING) if hunting_misses(c)]
    # Without the canaries: what the checks that read the rule's source catch on their own.
    static = [c for c in cases(HUNTING) if not hunting_misses(c, HUNTING_CHECKS - {"canary-hit"})]
    flagged = [case_name(c) for c in cases(BENIGN) if benign_blocks(c)]
    n_hunt, n_benign = len(cases(HUNTING)), len(cases(BENIGN))
    print(
        f"disguised set: {n_hunt - len(missed)}/{n_hunt} detected, {len(flagged)}/{n_benign} benign flagged"
    )
    return {
        "disguised_cases": n_hunt,
        "disguised_detection_rate": round((n_hunt - len(missed)) / n_hunt, 3),
        "disguised_missed": missed,
        "disguised_static_detection_rate": round(len(static) / n_hunt, 3),
        "benign_cases": n_benign,
        "benign_false_flags": len(flagged),
        "benign_flagged": flagged,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", type=int, default=10_000)
    ap.add_argument("--hex-rules", type=int, default=200)
    ap.add_argument(
        "--real-budget-s", type=float, default=150.0, help="longest audit of the real collections"
    )
    ap.add_argument("--chunk-rules", type=int, default=400, help="rules in one audited chunk of a collection")
    ap.add_argument("--budget-s", type=float, default=100.0, help="longest audit of one tree, projected")
    args = ap.parse_args()
    figures: dict[str, Any] = {"cores": os.cpu_count()}
    figures.update(speed(args.rules, args.hex_rules, args.budget_s))
    figures.update(disguised())
    figures.update(real_collections(args.real_budget_s, args.chunk_rules))
    print(json.dumps(figures, sort_keys=True, ensure_ascii=False))


if __name__ == "__main__":
    main()
