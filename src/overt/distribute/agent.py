"""The endpoint agent as a user runs it: ``overt agent status`` (what is installed, and why it was trusted)
and ``overt agent run`` (update, sleep with jitter, again: for machines without cron or a systemd timer).

The update itself is :mod:`overt.distribute.endpoint`; the directory, the pinned policy and the trust
records are :mod:`overt.distribute.agentdir`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from overt.distribute.agentdir import AgentLayout, TrustRecord, file_sha256, load_pinned, read_record
from overt.distribute.endpoint import EndpointUpdate, update_endpoint
from overt.distribute.trust import Follow, TrustPolicy
from overt.errors import Error, FormatError, UsageError
from overt.tlog.checkpoint import SignedCheckpoint


@dataclass(frozen=True, slots=True, kw_only=True)
class FollowStatus:
    """One followed item: its trust record (None: nothing installed by the agent) and whether the installed
    file still has the digest it was trusted with."""

    follow: Follow
    record: TrustRecord | None
    intact: bool | None  # None: nothing installed

    def to_dict(self) -> dict[str, Any]:
        return {
            "follow": self.follow.to_dict(),
            "installed": None if self.record is None else self.record.to_dict(),
            "intact": self.intact,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStatus:
    """``overt agent status``: the pinned policy, each followed item, and the last log head verified."""

    directory: Path
    policy: TrustPolicy
    items: tuple[FollowStatus, ...]
    log_head: dict[str, Any] | None  # origin and tree_size of the stored checkpoint

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "policy": self.policy.to_dict(),
            "items": [i.to_dict() for i in self.items],
            "log_head": self.log_head,
        }


def _stored_head(layout: AgentLayout) -> dict[str, Any] | None:
    stored = sorted(layout.log_state.glob("*.checkpoint")) if layout.log_state.is_dir() else []
    for path in stored:
        try:
            cp = SignedCheckpoint.from_bytes(path.read_bytes()).checkpoint
        except (OSError, FormatError):
            continue
        return {"origin": cp.origin, "tree_size": cp.tree_size, "root_hash": cp.root_hash.hex()}
    return None


def agent_status(agent_dir: Path) -> AgentStatus:
    """What is installed and why: read only, no network."""
    layout = AgentLayout(agent_dir)
    policy = load_pinned(layout)
    items = []
    for follow in policy.follows:
        record = read_record(layout, follow)
        intact = None if record is None else file_sha256(Path(record.installed)) == record.sha256
        items.append(FollowStatus(follow=follow, record=record, intact=intact))
    return AgentStatus(directory=agent_dir, policy=policy, items=tuple(items), log_head=_stored_head(layout))


def run_agent(
    agent_dir: Path,
    *,
    interval: float,
    jitter: float,
    runs: int | None,
    report: Callable[[EndpointUpdate | Error], None],
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    now: Callable[[], datetime | None] = lambda: None,
) -> int:
    """Update every ``interval`` seconds plus a random ``0..jitter`` (so a fleet does not arrive at once),
    ``runs`` times or forever; each result, or the error that stopped a run, goes to ``report``. A failed run
    never ends the loop. Returns how many runs were made."""
    if interval < 0 or jitter < 0:
        raise UsageError("the interval and the jitter are seconds, zero or more")
    if runs is not None and runs < 1:
        raise UsageError("--runs must be at least 1")
    pick = rng or random.SystemRandom()
    done = 0
    while runs is None or done < runs:
        if done:
            sleep(interval + pick.uniform(0, jitter))
        try:
            report(update_endpoint(agent_dir, now=now()))
        except Error as e:
            report(e)
        done += 1
    return done
