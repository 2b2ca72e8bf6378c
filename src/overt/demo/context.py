"""The demo's directory and the state its stages share: the conveyor home, the witnesses, the customer's pinned
policy and verifier state, and helpers that spell evidence paths and re-check commands.

The demo owns its directory: it refuses one that is not empty (:func:`prepare_root`), because every claim it
prints is about a log, keys and witnesses it made itself. Running the witnesses is here too
(:func:`running_witnesses`); the stages that use them live in their own modules.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from overt.demo.claims import Command
from overt.errors import ConfigError, UsageError
from overt.home import Home
from overt.tlog.client import Fetch, LogClient, directory_fetcher
from overt.tlog.policy import Policy, PolicyWitness, quorum_groups
from overt.tlog.witness import Witness, init_witness, load_witness, trust_log

ORIGIN = "demo.overt.example/log"
WITNESS_NAMES = ("w1", "w2")


def prepare_root(root: Path) -> Path:
    """The demo directory, absolute, created empty; an existing non-empty one is refused, never reused."""
    root = root.expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is not a directory; choose another --home for the demo")
    if root.is_dir() and any(root.iterdir()):
        raise UsageError(
            f"{root} is not empty: the demo makes a new log, keys and witnesses, and what it proves holds "
            f"only for a directory it filled itself. Remove {root} or choose another --home"
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the demo directory {root}: {e.strerror}") from e
    return root


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoContext:
    """What every stage gets. ``witnesses`` are the two witnesses, serving while the stages run."""

    root: Path
    home: Home
    witnesses: tuple[Witness, ...]

    @property
    def pinned_policy(self) -> Path:
        """The log's policy as a customer pins it (log key, witness keys, quorum): every check uses it."""
        return self.root / "trusted.policy"

    @property
    def state_dir(self) -> Path:
        """The customer's verifier state: the last checkpoint it verified."""
        return self.root / "client-state"

    @property
    def evidence(self) -> Path:
        return self.root / "evidence"

    def policy(self) -> Policy:
        return Policy.from_bytes(self.pinned_policy.read_bytes())

    def client(self, fetch: Fetch | None = None) -> LogClient:
        """A verifier of the conveyor's log that trusts only the pinned policy and remembers what it saw."""
        return LogClient(
            fetch or directory_fetcher(self.home.log.paths.public), self.policy(), self.state_dir
        )

    def rel(self, path: Path) -> str:
        """``path`` relative to the demo directory, as claims name their evidence."""
        return path.relative_to(self.root).as_posix()

    def write_evidence(self, name: str, data: bytes) -> Path:
        self.evidence.mkdir(exist_ok=True)
        path = self.evidence / name
        path.write_bytes(data)
        return path

    def overt(self, *args: str | Path | int, exit_code: int = 0) -> Command:
        return Command(argv=("overt", *(str(a) for a in args)), exit_code=exit_code)

    def log_verify(self, *args: str | Path | int, exit_code: int = 0) -> Command:
        """``overt log verify`` of the conveyor's published log, under the pinned policy."""
        return self.overt(
            "log",
            "verify",
            "--log",
            self.home.log.paths.public,
            "--policy",
            self.pinned_policy,
            *args,
            exit_code=exit_code,
        )

    def public_key(self, keyid: str) -> Path:
        return self.home.paths.public / "keys" / f"{keyid}.json"


def auditor_name(n: int) -> str:
    """The demo's ``n``-th auditor's name, which its witness's key bears too."""
    return f"auditor{n}.demo.overt.example"


def auditor_root(root: Path, n: int) -> Path:
    """Where the demo's ``n``-th auditor keeps its home (its witness at ``witness/`` in it)."""
    return root / "auditors" / f"a{n}"


def _make_witnesses(root: Path, vkey: str) -> tuple[Witness, ...]:
    """The witnesses the log's policy requires: each auditor's own, made before its home (the auditor home
    adopts it, :meth:`overt.auditor.AuditorHome.init`), so the witnesses are the independent auditors."""
    out = []
    for n, _ in enumerate(WITNESS_NAMES, 1):
        wdir = auditor_root(root, n) / "witness"
        init_witness(wdir, auditor_name(n))
        trust_log(wdir, vkey)
        out.append(load_witness(wdir))
    return tuple(out)


@contextmanager
def running_witnesses(root: Path, home: Home) -> Iterator[DemoContext]:
    """Two independent witnesses, the auditors', each with its own key and state, served over HTTP while the
    block runs; the conveyor's policy requires both, and the customer pins a copy of it taken now (out of band)."""
    # Imported here: the servers pull in FastAPI, which the rest of overt (overt scan on an endpoint) skips.
    from overt.server.runner import BackgroundServer
    from overt.server.witness import create_app

    witnesses = _make_witnesses(root, (home.log.paths.public / "vkey").read_text().strip())
    with ExitStack() as stack:
        servers = [stack.enter_context(BackgroundServer(create_app(w))) for w in witnesses]
        entries = tuple(
            PolicyWitness(name=name, verifier=w.signer.verifier(), url=srv.url)
            for name, w, srv in zip(WITNESS_NAMES, witnesses, servers, strict=True)
        )
        groups, quorum = quorum_groups(WITNESS_NAMES, "all")
        home.log.save_policy(
            Policy(logs=home.log.policy().logs, witnesses=entries, groups=groups, quorum=quorum)
        )
        context = DemoContext(root=root, home=home, witnesses=witnesses)
        context.pinned_policy.write_bytes(home.log.paths.policy.read_bytes())
        yield context
