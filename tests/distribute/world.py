"""An endpoint's world, all real: a conveyor home whose log is cosigned by two real witnesses (overt's
``Witness`` behind its HTTP app, each on its own port), a TUF repository, test auditor keys whose VSAs go
through overt.attest and the home's signing service (so they are logged), the home's ``public/`` served by
http.server on 127.0.0.1, and a customer's trust policy pinned into an agent directory."""

from __future__ import annotations

import functools
import hashlib
import http.server
import itertools
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from overt.attest.statement import ResourceDescriptor
from overt.attest.vsa import PASSED, VerificationSummary, VsaVerifier
from overt.distribute.agentdir import AgentLayout, pin_policy
from overt.distribute.endpoint import EndpointUpdate, FollowOutcome, update_endpoint
from overt.distribute.release import ReleasedTarget
from overt.distribute.verdicts import add_verdict
from overt.home import Home
from overt.keys.registry import KeyRecord, Role
from overt.server.runner import BackgroundServer
from overt.server.witness import create_app
from overt.tlog.cosignature import CosignatureSigner
from overt.tlog.note import parse_ed25519_vkey
from overt.tlog.policy import Group, Policy, PolicyWitness
from overt.tlog.witness import Witness
from tests.distribute.conftest import Repo, add_key, make_repo


@dataclass
class Clock:
    """The witnesses' clock: real time plus ``offset`` seconds (cosignature/v1 timestamps come from it)."""

    offset: float = 0.0

    def time(self) -> float:
        return time.time() + self.offset


# Test-only witness keys, fixed so runs are reproducible.
SEEDS = {"w1": b"\x31" * 32, "w2": b"\x32" * 32}


def signer(name: str, clock: Clock) -> CosignatureSigner:
    return CosignatureSigner.create(f"{name}.agent.overt.example", SEEDS[name], now=clock.time)


class RunningWitness:
    """A real witness for the home's log, served over HTTP until :meth:`stop`."""

    def __init__(self, name: str, home: Home, state: Path, clock: Clock) -> None:
        self.name = name
        vkey = parse_ed25519_vkey((home.log.paths.public / "vkey").read_text().strip())
        self.witness = Witness(signer(name, clock), [vkey], state)
        self.server = BackgroundServer(create_app(self.witness))
        self.server.__enter__()

    @property
    def policy_entry(self) -> PolicyWitness:
        return PolicyWitness(name=self.name, verifier=self.witness.signer.verifier(), url=self.server.url)

    def stop(self) -> None:
        self.server.__exit__(None, None, None)


def witnessed_policy(home: Home, witnesses: list[RunningWitness], k: int) -> Policy:
    names = tuple(w.name for w in witnesses)
    return Policy(
        logs=home.log.policy().logs,
        witnesses=tuple(w.policy_entry for w in witnesses),
        groups=(Group(name="witnesses", threshold=k, members=names),),
        quorum="witnesses",
    )


class Site:
    """A directory served by http.server on 127.0.0.1 (as nginx will serve ``public/``); ``root`` may be
    switched to serve another tree at the same URL (what a fork or a targeted update looks like)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requested: list[str] = []
        site = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kw: object) -> None:
                super().__init__(*args, directory=str(site.root), **kw)  # type: ignore[arg-type]

            def log_message(self, format: str, *args: object) -> None:
                site.requested.append(self.path)

        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 64  # the agent fetches evidence concurrently; socketserver's default is 5

        self.server = Server(("127.0.0.1", 0), functools.partial(Handler))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@dataclass
class World:
    repo: Repo
    site: Site
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
        summary = VerificationSummary(
            verifier=VsaVerifier(id=f"https://auditor-{auditor.keyid[:8]}.example/rebuilder"),
            time_verified=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            resource_uri=path,
            policy=ResourceDescriptor(
                uri=f"https://auditor.example/policy/v1#{next(self.serial)}"
            ),  # distinct bytes
            verification_result=result,
            verified_levels=("SLSA_BUILD_LEVEL_3",),
        )
        statement = summary.statement((ResourceDescriptor(name=path, digest={"sha256": sha256}),))
        return h.signing_service().sign(auditor, statement).entry

    def vouch(
        self,
        target: ReleasedTarget | tuple[str, bytes],
        *auditors: KeyRecord,
        result: str = PASSED,
        home: Home | None = None,
    ) -> None:
        """Each of ``auditors`` logs a VSA on ``target`` (a release, or a path and its bytes), published with
        'overt tuf add-verdict''s code."""
        from overt.distribute.checks import ReleaseContext

        if isinstance(target, tuple):
            path, sha256 = target[0], hashlib.sha256(target[1]).hexdigest()
        else:
            path, sha256 = target.path, target.sha256
        h = home or self.home
        for auditor in auditors:
            entry = self.vsa(path, sha256, auditor, result, home=h)
            add_verdict(ReleaseContext.of_home(Home(h.path)), entry, target=path)

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
        keys = self.home.paths.public / "keys"
        builder = self.home.registry.current(Role.BUILDER, datetime.now(UTC))
        auditor_files = [str(keys / f"{a.keyid}.json") for a in (auditors or self.auditors)]
        return f'''
[repository]
url = "{self.site.url}/tuf"
root = "root.json"
root_sha256 = "{hashlib.sha256((self.customer / "root.json").read_bytes()).hexdigest()}"

[log]
url = "{self.site.url}/log"
policy = "log.policy"

[auditors]
keys = {auditor_files!r}
threshold = {threshold}

[builders]
ids = ["{self.home.conveyor.provenance_builder_id}"]
keys = ["{keys / f"{builder.keyid}.json"}"]
threshold = 1

[freshness]
max_cosignature_age_hours = 24

[[follow]]
product = "demo"
channel = "stable"
{extra}'''.replace("'", '"')

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
        site=Site(conveyor.paths.public),
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
