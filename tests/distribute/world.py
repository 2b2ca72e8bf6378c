"""An endpoint's world, all real: a conveyor home whose log is cosigned by two real witnesses (overt's
``Witness`` behind its HTTP app, each on its own port), a TUF repository, test auditor keys whose VSAs go
through overt.attest and the home's signing service (so they are logged), the home's ``public/`` served by
http.server on 127.0.0.1, and a customer's trust policy pinned into an agent directory."""

from __future__ import annotations

import hashlib
import itertools
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from overt.attest.vsa import PASSED
from overt.distribute import testbed
from overt.distribute.agentdir import AgentLayout, pin_policy
from overt.distribute.endpoint import EndpointUpdate, FollowOutcome, update_endpoint
from overt.distribute.release import ReleasedTarget
from overt.distribute.testbed import trust_policy_text
from overt.home import Home
from overt.keys.registry import KeyRecord, Role
from overt.server.runner import BackgroundServer
from overt.server.static import StaticSite
from overt.server.witness import create_app
from overt.tlog.policy import Policy, PolicyWitness
from tests.distribute.conftest import Repo, add_key, make_repo


@dataclass
class Clock:
    """The witnesses' clock: real time plus ``offset`` seconds (cosignature/v1 timestamps come from it)."""

    offset: float = 0.0

    def time(self) -> float:
        return time.time() + self.offset


class RunningWitness:
    """A real witness for the home's log, served over HTTP until :meth:`stop`."""

    def __init__(self, name: str, home: Home, state: Path, clock: Clock) -> None:
        self.name = name
        self.witness = testbed.witness_with_test_key(name, home, state, now=clock.time)
        self.server = BackgroundServer(create_app(self.witness))
        self.server.__enter__()

    @property
    def policy_entry(self) -> PolicyWitness:
        return PolicyWitness(name=self.name, verifier=self.witness.signer.verifier(), url=self.server.url)

    def stop(self) -> None:
        self.server.__exit__(None, None, None)


def witnessed_policy(home: Home, witnesses: list[RunningWitness], k: int) -> Policy:
    return testbed.witnessed_policy(home, [w.policy_entry for w in witnesses], k)


@dataclass
class World:
    repo: Repo
    site: StaticSite
    witnesses: list[RunningWitness]
    auditors: list[KeyRecord]
    customer: Path  # where the customer keeps the policy and the files it names
    agent: Path
    clock: Clock
    extra: list[RunningWitness] = field(default_factory=list)
    serial: Iterator[int] = field(default_factory=itertools.count)

    @property
    def home(self) -> Home:
        return self.repo.home

    @property
    def layout(self) -> AgentLayout:
        return AgentLayout(self.agent)

    def vsa(
        self, path: str, sha256: str, auditor: KeyRecord, result: str = PASSED, *, home: Home | None = None
    ) -> bytes:
        """A VSA by ``auditor`` on ``path``, signed through overt.attest and logged by the home."""
        h = home or self.home
        return testbed.auditor_verdict(
            h, auditor, path=path, sha256=sha256, result=result, nonce=next(self.serial)
        )

    def vouch(
        self,
        target: ReleasedTarget | tuple[str, bytes],
        *auditors: KeyRecord,
        result: str = PASSED,
        home: Home | None = None,
    ) -> None:
        """Each of ``auditors`` logs a VSA on ``target`` (a release, or a path and its bytes), published with
        'overt tuf add-verdict''s code."""
        if isinstance(target, tuple):
            path, sha256 = target[0], hashlib.sha256(target[1]).hexdigest()
        else:
            path, sha256 = target.path, target.sha256
        testbed.vouch(
            home or self.home, auditors, path=path, sha256=sha256, result=result, nonce=next(self.serial)
        )

    def release(
        self, version: str, data: bytes | None = None, *, vouched: int = 2, **kw: str
    ) -> ReleasedTarget:
        """Release demo ``version`` and have the first ``vouched`` auditors PASS it."""
        body = data if data is not None else f"demo {version}\n".encode() * 64
        released = self.repo.release(body, "demo.tar.gz", version=version, **kw)
        self.vouch(released, *self.auditors[:vouched])
        return released

    def policy_text(
        self, *, auditors: list[KeyRecord] | None = None, threshold: int = 2, extra: str = ""
    ) -> str:
        return trust_policy_text(
            self.home,
            url=self.site.url,
            root=self.customer / "root.json",
            auditors=auditors or self.auditors,
            threshold=threshold,
            extra=extra,
        )

    def pin(self, text: str | None = None) -> None:
        (self.customer / "policy.toml").write_text(text if text is not None else self.policy_text())
        pin_policy(self.layout, self.customer / "policy.toml")

    def update(self, now: datetime | None = None) -> EndpointUpdate:
        return update_endpoint(self.agent, now=now)

    def outcome(self, now: datetime | None = None) -> FollowOutcome:
        return self.update(now).outcomes[0]

    def installed(self) -> str | None:
        """The demo version the agent has installed (its ``current`` symlink), None if none."""
        link = self.agent / "products" / "demo" / "stable" / "current"
        return link.readlink().name if link.is_symlink() else None

    def stop(self) -> None:
        self.site.stop()
        for w in self.witnesses + self.extra:
            w.stop()


def make_world(conveyor: Home, tmp_path: Path) -> Iterator[World]:
    """The world of the module docstring; stopped (servers and witnesses) when the iterator closes."""
    clock = Clock()
    witnesses = [RunningWitness(n, conveyor, tmp_path / f"{n}.state.json", clock) for n in ("w1", "w2")]
    conveyor.log.save_policy(witnessed_policy(conveyor, witnesses, 2))
    assert conveyor.log.publish().published
    repo = make_repo(conveyor, tmp_path)
    auditors = [add_key(conveyor, Role.AUDITOR) for _ in range(3)]
    customer = tmp_path / "customer"
    customer.mkdir()
    shutil.copy(repo.public / "metadata" / "1.root.json", customer / "root.json")
    (customer / "log.policy").write_bytes(conveyor.log.policy().to_bytes())
    world = World(
        repo=repo,
        site=StaticSite(conveyor.paths.public),
        witnesses=witnesses,
        auditors=auditors,
        customer=customer,
        agent=tmp_path / "agent",
        clock=clock,
    )
    try:
        yield world
    finally:
        world.stop()
