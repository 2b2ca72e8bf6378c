"""Demo stage "a database restored from an old backup": the log refuses to fork, and recovers from its tiles.

The backup is the one :mod:`overt.demo.log_stage` took at 10 entries; by now the log has published 20.
"""

from __future__ import annotations

import shutil

from overt.demo.claims import Claim, Promise, Stage, Status
from overt.demo.context import DemoContext
from overt.demo.log_stage import backup_path
from overt.errors import VerificationError
from overt.tlog.checkpoint import SignedCheckpoint
from overt.tlog.guard import StaleDatabaseError


def _refused(ctx: DemoContext) -> Claim:
    h = ctx.home
    for suffix in ("-wal", "-shm"):
        (h.path / f"overt.db{suffix}").unlink(missing_ok=True)
    shutil.copyfile(backup_path(ctx), h.path / "overt.db")
    try:
        h.log.open().close()
    except StaleDatabaseError as e:
        database_size, signed_size = e.evidence["database_size"], e.evidence["signed_size"]
    else:
        raise VerificationError("the log accepted a database restored from an old backup")
    return Claim(
        id="log.restored-backup-refused",
        promise=Promise.NOTHING_SIGNED_IN_SECRET,
        status=Status.PROVED,
        check=f"with its database replaced by a backup taken at {database_size} entries, the log refused to "
        f"append or sign: it had already published {signed_size} entries, and signing from the old database "
        "would have given two different histories under one log key",
        evidence=ctx.rel(backup_path(ctx)),
        recheck_unavailable="it needs the database replaced again; the restored copy is kept beside it as "
        "conveyor/overt.db.lost-<time>",
        facts={"database_size": database_size, "signed_size": signed_size},
    )


def _recovered(ctx: DemoContext) -> Claim:
    h = ctx.home
    published = SignedCheckpoint.from_bytes((h.log.paths.public / "checkpoint").read_bytes()).checkpoint
    result = h.log.recover()
    if (result.tree_size, result.root_hash) != (published.tree_size, published.root_hash):
        raise VerificationError("recovery did not restore the published tree")
    h.log.open().close()  # the log's own check on open now passes
    return Claim(
        id="log.recovered-from-tiles",
        promise=Promise.NOTHING_SIGNED_IN_SECRET,
        status=Status.PROVED,
        check=f"'overt log recover' rebuilt the database from the published tiles, each checked against the "
        f"signed checkpoint: {result.tree_size} entries with the published root, and the log opens again",
        evidence=ctx.rel(h.log.paths.public / "checkpoint"),
        recheck=ctx.overt("log", "fsck", "--full", "--home", h.path),
        facts={"tree_size": result.tree_size},
    )


def recovery_stage(ctx: DemoContext) -> Stage:
    return Stage(
        name="recovery",
        title="a log database restored from an old backup",
        setup="the log database is replaced by the backup taken at 10 entries, as a mistaken restore would",
        claims=(_refused(ctx), _recovered(ctx)),
    )
