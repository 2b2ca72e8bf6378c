"""The conveyor's ``overt build``: run and compare (:mod:`overt.build.run`), then sign and publish
(:mod:`overt.build.publish`), in a scratch directory that is removed afterwards.

A build that fails raises before anything is signed, so no failure is ever logged as a success. A check that
finds different outputs signs nothing either: it keeps both runs' outputs and diffoscope's report under
``public/builds/<build-id>/`` and raises :class:`ReproducibilityError` naming that directory.

The scratch directory ``overt-build-XXXX`` has a lock file beside it, ``overt-build-XXXX.lock``, which the
build holds (``flock``) while it runs. A build that is killed (SIGKILL, power loss) cannot remove its
directory, but its lock goes with it: the next build removes every scratch directory whose lock nobody holds.
A directory without a lock file (made by an older overt) is left alone, since nothing says its build is over.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

from overt.build.compare import IDENTICAL
from overt.build.publish import KeptFailure, Publication, keep_failure, sign_and_publish
from overt.build.run import LABELS, RunResult, run_and_compare
from overt.errors import ReproducibilityError
from overt.keys.context import ConveyorContext
from overt.source.escrow import Escrow

TMPFS = Path("/dev/shm")


LOCK_SUFFIX = ".lock"


def scratch_base() -> Path:
    """Where scratch directories go: tmpfs when there is one (faster, and its directory order follows creation
    order, which ``--check`` varies), else the system's temporary directory."""
    return TMPFS if TMPFS.is_dir() and os.access(TMPFS, os.W_OK) else Path(tempfile.gettempdir())


@contextmanager
def scratch_directory(prefix: str, *, base: Path | None = None) -> Iterator[Path]:
    """A fresh directory for a build's runs under ``base`` (default :func:`scratch_base`), removed afterwards.

    Its lock file is made and locked first, the directory second, so a directory whose lock is free is never
    one a running build is about to use. Stale ones are removed first (:func:`remove_stale_scratch`).
    """
    where = base if base is not None else scratch_base()
    remove_stale_scratch(prefix, where)
    fd, lock = tempfile.mkstemp(prefix=prefix, suffix=LOCK_SUFFIX, dir=where)  # not inherited by the build
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        root = Path(lock.removesuffix(LOCK_SUFFIX))
        root.mkdir(mode=0o700)
        try:
            yield root
        finally:
            shutil.rmtree(root, ignore_errors=True)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)  # last: until the directory is gone, its lock is held


def remove_stale_scratch(prefix: str, base: Path) -> list[Path]:
    """Remove the scratch directories under ``base`` (and their locks) whose lock no process holds: their
    build was killed. Only this user's, never through a symbolic link. Returns the directories removed."""
    removed = []
    for lock in sorted(base.glob(f"{prefix}*{LOCK_SUFFIX}")):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            continue  # gone, a symbolic link, or another user's
        try:
            if os.fstat(fd).st_uid != os.getuid():
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # held: its build is running
            root = Path(str(lock).removesuffix(LOCK_SUFFIX))
            with suppress(FileNotFoundError):
                info = os.lstat(root)
                if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
                    shutil.rmtree(root, ignore_errors=True)
                    removed.append(root)
            with suppress(FileNotFoundError):
                os.unlink(lock)
        finally:
            os.close(fd)
    return removed


def build(
    escrow: Escrow,
    source_ref: str,
    *,
    context: ConveyorContext,
    publish_dir: Path,
    check: bool = False,
    workdir: Path | None = None,
) -> Publication:
    """Build ``source_ref`` once (or twice with variations when ``check``), sign, log and publish."""
    with ExitStack() as stack:
        root = workdir or stack.enter_context(scratch_directory("overt-build-"))
        result = run_and_compare(escrow, source_ref, workdir=root, check=check, now=context.service.now)
        if not result.reproducible:
            raise not_reproducible(result, keep_failure(result, publish_dir=publish_dir))
        return sign_and_publish(result, context, publish_dir=publish_dir)


def not_reproducible(result: RunResult, kept: KeptFailure) -> ReproducibilityError:
    """The error for a check that found different outputs; it names them, the variations, and the evidence."""
    assert result.verdict is not None
    names = [*result.verdict.differing, *(f"{n} (made by one run only)" for n in result.verdict.missing)]
    files = ", ".join(p.name for p in kept.report_paths) or f"no diffoscope report: {kept.report_text}"
    verb = "differs" if len(names) == 1 else "differ"
    varied = ", ".join(LABELS[k] for k in result.varied) or "nothing"
    evidence: dict[str, object] = {"differing": list(result.verdict.differing)}
    if result.verdict.missing:
        evidence["missing"] = list(result.verdict.missing)
    return ReproducibilityError(
        f"not reproducible: {', '.join(names)} {verb} between two builds varying {varied}; nothing was "
        f"signed. Both builds' outputs and logs are kept in {kept.directory} (reference/, varied/, {files})",
        **evidence,
        directory=str(kept.directory),
        report=[str(p) for p in kept.report_paths],
    )


def verdict_text(publication: Publication) -> str:
    verdict = publication.result.verdict
    if verdict is None:
        return "built once (not checked)"
    if verdict.verdict == IDENTICAL:
        return "identical"
    return f"equivalent after normalisation ({', '.join(verdict.normalised)})"


def variations_text(result: RunResult) -> str:
    """What the second run of a check had that the first did not, as a user reads it."""
    if len(result.runs) < 2:
        return "no second build"
    ref, var = (r.variation.aspects() for r in result.runs)
    return ", ".join(f"{LABELS[k]} ({ref[k]} → {var[k]})" for k in result.varied) or "nothing"
