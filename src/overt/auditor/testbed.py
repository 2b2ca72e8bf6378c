"""World-building for the auditors' tests, the demo and ``benchmarks.rebuild``, with overt's public APIs only.

- :func:`make_world` (or :data:`rebuild_world`, its context manager): a conveyor home whose log is cosigned by
  witnesses with test keys, each served over HTTP, and served by the conveyor's own log server (``overt
  serve``'s app: static ``public/`` and ``POST /add``) on loopback. The vendor's hand-out
  (:func:`hand_out`: the log policy bytes and the builder's public key file, copied out of the conveyor home)
  is made once; :meth:`RebuildWorld.make_auditor` makes each independent auditor from it alone, with its own
  home, key and build path (workdir). An auditor home never reads the conveyor home.
- What they rebuild, built and logged by the conveyor: a source tree with a recipe (:func:`build_tree`, the
  demo's sample agent :func:`build_sample_agent`), the PyPI corpus (:data:`CORPUS_CASES`, tomli 2.0.1 and
  idna 3.7 from their sdists with their pinned flit_core wheel escrowed as the only toolchain input, the
  files given by the caller, who fetched and checked them), and the demo's AV database
  (:func:`release_demo_database`).
- The endpoint's side: :func:`publish_verdict` (``overt tuf add-verdict`` of an auditor's published VSA); a
  customer's trust policy naming independent auditors' public key files is
  :func:`overt.distribute.testbed.trust_policy_text` given their paths.

Every key made here is a test key (software keys; the witnesses' seeds are
:data:`overt.distribute.testbed.TEST_WITNESS_SEEDS`). Nothing here is used by a conveyor or an auditor in
operation. Deliberately not here: the checks themselves, which the tests make.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from overt.attest.dsse import Envelope
from overt.attest.statement import Statement
from overt.attest.verify import verify_statement
from overt.attest.vsa import VSA_V1
from overt.auditor.home import AuditorHome
from overt.auditor.rebuild import RebuildSettings
from overt.avdb.release import AvdbStore, Refused, Released, release
from overt.build.conveyor import build
from overt.build.publish import Publication
from overt.demo.avdb_stage import BETA, DROPPER, DROPPER_2, EICAR_RULE, HASHES
from overt.demo.build_stage import SAMPLE_FILES, SAMPLE_RECIPE
from overt.distribute import testbed
from overt.distribute.checks import ReleaseContext
from overt.distribute.release import ReleasedTarget
from overt.distribute.verdicts import PublishedVerdict, add_verdict
from overt.errors import ConfigError, Error, VerificationError
from overt.home import Home
from overt.keys.registry import KeyRecord, Role
from overt.server.log import create_app
from overt.server.runner import BackgroundServer, free_port
from overt.server.witness import create_app as create_witness_app
from overt.source.escrow import DEFAULT_DIRECTORY_MTIME, EscrowEntry, add_recipe, read_directory, read_source
from overt.tlog.client import LogClient, http_fetcher
from overt.tlog.policy import PolicyWitness
from overt.tlog.witness import Witness

# A small product: two text files, one of them transformed; builds in well under a second.
SIMPLE_RECIPE = """
[build]
steps = ["mkdir -p out", "cp hello.txt out/hello.txt", "tr a-z A-Z < hello.txt > out/upper.txt"]
outputs = ["out/*.txt"]
"""
SAMPLE_AGENT = "sample-agent-1.0"  # the demo's product (overt.demo.build_stage), as escrowed there
DEMO_DATABASE = "demo"  # the demo's AV database (overt.demo.avdb_stage)
# The demo's two clean rule trees, by version (v2 changes OVT-0002 and adds OVT-0003).
DEMO_DATABASE_RULES = {1: EICAR_RULE + DROPPER, 2: EICAR_RULE + DROPPER_2 + BETA}


@dataclass(frozen=True, slots=True, kw_only=True)
class CorpusCase:
    """One upstream sdist that builds to upstream's wheel, bit for bit, with one pinned toolchain wheel."""

    sdist: str
    toolchain: str
    wheel: str
    recipe: str


# docs/recipes.md's tomli and idna examples, as written there (tests/auditor/test_acceptance.py checks it).
TOMLI_RECIPE = """[build]
steps = ["mkdir -p dist", ["python3", "-c", "from flit_core import buildapi; buildapi.build_wheel('dist')"]]
outputs = ["dist/*.whl"]

[build.env]
TZ = "UTC"
SOURCE_DATE_EPOCH = "unset"
PYTHONPATH = "/toolchain/flit_core-3.6.0-py3-none-any.whl"

[[toolchain]]
name = "flit_core-3.6.0-py3-none-any.whl"
sha256 = "7661029dedadd456c1d94e0a4765222447f00808bb1fcc767e4270a883ba8b4c"
"""
IDNA_RECIPE = """[build]
steps = ["mkdir -p dist", ["python3", "-c", "from flit_core import buildapi; buildapi.build_wheel('dist')"]]
outputs = ["dist/*.whl"]

[build.env]
TZ = "America/Los_Angeles"
SOURCE_DATE_EPOCH = "unset"
PYTHONPATH = "/toolchain/flit_core-3.9.0-py3-none-any.whl"

[[toolchain]]
name = "flit_core-3.9.0-py3-none-any.whl"
sha256 = "7aada352fb0c7f5538c4fafeddf314d3a6a92ee8e2b1de70482329e42de70301"
"""
CORPUS_CASES = (
    CorpusCase(
        sdist="tomli-2.0.1.tar.gz",
        toolchain="flit_core-3.6.0-py3-none-any.whl",
        wheel="tomli-2.0.1-py3-none-any.whl",
        recipe=TOMLI_RECIPE,
    ),
    CorpusCase(
        sdist="idna-3.7.tar.gz",
        toolchain="flit_core-3.9.0-py3-none-any.whl",
        wheel="idna-3.7-py3-none-any.whl",
        recipe=IDNA_RECIPE,
    ),
)


# --- the vendor's side: witnesses, log server, hand-out ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServedWitness:
    """A witness for the conveyor's log with a test key, served over HTTP until :meth:`stop`."""

    name: str
    witness: Witness
    server: BackgroundServer

    @property
    def policy_entry(self) -> PolicyWitness:
        return PolicyWitness(name=self.name, verifier=self.witness.signer.verifier(), url=self.server.url)

    def stop(self) -> None:
        self.server.__exit__(None, None, None)


def serve_witness(name: str, h: Home, state: Path) -> ServedWitness:
    """Witness ``name`` (a key of :data:`~overt.distribute.testbed.TEST_WITNESS_SEEDS`) of ``h``'s log."""
    witness = testbed.witness_with_test_key(name, h, state)
    server = BackgroundServer(create_witness_app(witness))
    server.__enter__()
    return ServedWitness(name=name, witness=witness, server=server)


@dataclass(frozen=True, slots=True)
class Handout:
    """What the vendor hands an auditor out of band: its log policy and its builder's public key file."""

    policy: Path
    keys: tuple[Path, ...]


def hand_out(conveyor: Home, where: Path) -> Handout:
    """Copy the log policy and the current builder's public key file out of ``conveyor`` into ``where``."""
    where.mkdir(parents=True, exist_ok=True)
    policy = where / "log.policy"
    policy.write_bytes(conveyor.log.policy().to_bytes())
    builder = conveyor.registry.current(Role.BUILDER, datetime.now(UTC))
    key = where / f"{builder.keyid}.json"
    shutil.copyfile(conveyor.paths.public / "keys" / f"{builder.keyid}.json", key)
    return Handout(policy=policy, keys=(key,))


# --- the auditors -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Auditor:
    """An independent auditor: its home (its own key) and where it builds."""

    home: AuditorHome
    workdir: Path

    @property
    def public_key_file(self) -> Path:
        """The auditor's public key record, as it publishes it (what a customer pins)."""
        return self.home.paths.public_keys / f"{self.home.key.keyid}.json"

    def public_key(self) -> KeyRecord:
        return KeyRecord.from_bytes(self.public_key_file.read_bytes())

    def vsa(self, provenance_sha256: str) -> Path:
        """Where it published its VSA on that provenance (``public/vsa/``)."""
        return self.home.paths.vsa(provenance_sha256)


@dataclass
class RebuildWorld:
    """A conveyor (home, witnesses, log server) and independent auditors made from the vendor's hand-out."""

    conveyor: Home
    witnesses: tuple[ServedWitness, ...]
    server: BackgroundServer
    handout: Handout
    tmp: Path
    auditors: list[Auditor] = field(default_factory=list)

    @property
    def auditor(self) -> AuditorHome:
        """The first auditor's home."""
        return self.auditors[0].home

    @property
    def witness(self) -> ServedWitness:
        return self.witnesses[0]

    @property
    def site(self) -> str:
        """The vendor's public site: ``public/`` of the conveyor home, served by its log server."""
        return self.server.url

    @property
    def log_url(self) -> str:
        return f"{self.server.url}/log"

    def make_auditor(self, name: str, *, jurisdiction: str = "DE", workdir: Path | None = None) -> Auditor:
        """A new auditor home ``tmp/auditor-<name, / as ->`` from the hand-out alone; it builds in ``workdir``
        (default: ``tmp/<name, / as ->-builds``)."""
        slug = name.replace("/", "-")
        home = AuditorHome.init(
            self.tmp / f"auditor-{slug}",
            name=name,
            log_url=self.log_url,
            log_policy=self.handout.policy.read_bytes(),
            vendor_keys=list(self.handout.keys),
            jurisdiction=jurisdiction,
        )
        made = Auditor(home=home, workdir=workdir or self.tmp / f"{slug}-builds")
        self.auditors.append(made)
        return made

    def follow(self, auditor: Auditor | None = None, **kw: Any) -> RebuildSettings:
        """The rebuilder's settings for ``auditor`` (default: the first) following this world's log."""
        kw.setdefault("workdir", str((auditor or self.auditors[0]).workdir))
        return RebuildSettings.of(self.log_url, **kw)

    def build(self, files: Mapping[str, str], recipe: str = SIMPLE_RECIPE, name: str = "src") -> Publication:
        """Escrow and build a tree with the conveyor (its entries go through the log server)."""
        return build_tree(self.conveyor, self.tmp / f"tree-{name}", files, recipe, name=name)

    def entries(self) -> list[bytes]:
        """Every entry of the log, read as a verifier reads it."""
        with httpx.Client() as http:
            client = LogClient(http_fetcher(self.log_url, http), self.conveyor.log.policy())
            return client.entries(client.update().checkpoint.checkpoint.tree_size)

    def auditor_key(self, auditor: Auditor | None = None) -> KeyRecord:
        return (auditor or self.auditors[0]).public_key()

    def verdicts(self, auditor: Auditor | None = None) -> list[tuple[int, Statement]]:
        """The VSAs in the log signed by ``auditor``'s key (default: the first's), with their indices."""
        key = self.auditor_key(auditor).key
        out = []
        for i, entry in enumerate(self.entries()):
            try:
                statement = verify_statement(Envelope.from_bytes(entry), [key], 1)
            except Error:  # every other entry: not this auditor's
                continue
            if statement.predicate_type == VSA_V1:
                out.append((i, statement))
        return out

    def stop(self) -> None:
        self.server.__exit__(None, None, None)
        for w in self.witnesses:
            w.stop()


def make_world(
    conveyor: Home,
    tmp: Path,
    *,
    name: str | None = "auditor.example/a1",
    witnesses: Sequence[str] = ("w1",),
) -> Iterator[RebuildWorld]:
    """The world of the module docstring, with a first auditor ``name`` (building in ``tmp/scratch``; None:
    none yet); its servers stop when the iterator closes. The log policy requires every witness."""
    served: list[ServedWitness] = []
    try:
        for w in witnesses:
            served.append(serve_witness(w, conveyor, tmp / f"{w}.state.json"))
        policy = [s.policy_entry for s in served]
        conveyor.log.save_policy(testbed.witnessed_policy(conveyor, policy, len(policy)))
        if not conveyor.log.publish().published:
            raise VerificationError("the witnesses did not cosign the conveyor's first checkpoint")
        port = free_port()
        server = BackgroundServer(create_app(conveyor, url=f"http://127.0.0.1:{port}"), port=port)
        server.__enter__()
    except BaseException:
        for s in served:
            s.stop()
        raise
    world = RebuildWorld(
        conveyor=conveyor,
        witnesses=tuple(served),
        server=server,
        handout=hand_out(conveyor, tmp / "handed-over"),
        tmp=tmp,
    )
    try:
        if name is not None:
            world.make_auditor(name, workdir=tmp / "scratch")
        yield world
    finally:
        world.stop()


rebuild_world = contextmanager(make_world)


# --- what the conveyor builds --------------------------------------------------------------------------------


def builder_key(h: Home) -> KeyRecord:
    return h.registry.current(Role.BUILDER, datetime.now(UTC))


def escrow_tree(
    h: Home,
    root: Path,
    files: Mapping[str, str],
    recipe: str,
    *,
    name: str,
    mtime: int = DEFAULT_DIRECTORY_MTIME,
) -> EscrowEntry:
    """Write ``files`` under ``root`` and escrow them with ``recipe`` as source ``name`` (once: the same tree
    again is the same escrow entry)."""
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    root.mkdir(parents=True, exist_ok=True)
    snapshot = add_recipe(read_directory(root), recipe.encode(), mtime)
    entry, _ = h.escrow.add_source(snapshot, name=name, service=h.signing_service(), key=builder_key(h))
    return entry


def build_source(h: Home, source: EscrowEntry) -> Publication:
    """Build an escrowed source once, sign, log and publish it under ``public/builds/``: a new provenance
    every time (a new invocation id)."""
    return build(h.escrow, source.sha256, context=h.conveyor_context(), publish_dir=h.paths.builds)


def build_tree(
    h: Home, root: Path, files: Mapping[str, str], recipe: str, *, name: str = "src"
) -> Publication:
    """:func:`escrow_tree`, then :func:`build_source`."""
    return build_source(h, escrow_tree(h, root, files, recipe, name=name))


def build_sample_agent(h: Home, root: Path) -> Publication:
    """The demo's product (overt.demo.build_stage): the sample agent packed into a tarball by its recipe."""
    return build_tree(h, root, SAMPLE_FILES, SAMPLE_RECIPE, name=SAMPLE_AGENT)


def build_corpus_case(h: Home, case: CorpusCase, files: Mapping[str, Path]) -> Publication:
    """Escrow the case's toolchain wheel and sdist (with its recipe) from ``files`` (name -> path, checked
    by the caller against their published digests) and build it once."""
    service, key = h.signing_service(), builder_key(h)
    h.escrow.add_input(files[case.toolchain].read_bytes(), name=case.toolchain, service=service, key=key)
    tree = read_source(files[case.sdist])
    source, _ = h.escrow.add_source(
        add_recipe(tree, case.recipe.encode(), max(f.mtime for f in tree)),
        name=case.sdist,
        service=service,
        key=key,
    )
    return build_source(h, source)


def release_demo_database(h: Home, where: Path, *, version: int) -> Released:
    """Release version ``version`` (1 or 2) of the demo's AV database as ``overt avdb build`` does: rules
    escrowed and audited by the vendor's rule auditor (a test key added to ``h`` if it has none), the
    database built, signed and logged, published under ``public/avdb/``."""
    rules = DEMO_DATABASE_RULES.get(version)
    if rules is None:
        raise ValueError(f"the demo database has versions {sorted(DEMO_DATABASE_RULES)}, not {version}")
    try:
        h.registry.current(Role.AUDITOR, datetime.now(UTC))
    except ConfigError:
        testbed.add_key(h, Role.AUDITOR)
    tree = where / f"{DEMO_DATABASE}-v{version}"
    for rel, text in {"yara/main.yar": rules, "hashes/main.hdb": HASHES}.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    released = release(
        AvdbStore(h.paths.public), h.escrow, read_directory(tree), name=DEMO_DATABASE, version=version,
        context=h.conveyor_context(auditor=True),
    )  # fmt: skip
    if isinstance(released, Refused):
        raise VerificationError(
            f"the demo database v{version} was refused: {len(released.unwaived)} findings"
        )
    return released


# --- the endpoint's side ---------------------------------------------------------------------------------------


def provenance_of(target: ReleasedTarget) -> str:
    """The sha256 of the logged provenance envelope a released target names."""
    return str(target.custom["overt"]["provenance"]["sha256"])


def publish_verdict(conveyor: Home, auditor: Auditor, target: ReleasedTarget) -> PublishedVerdict:
    """``overt tuf add-verdict`` of the VSA ``auditor`` published (``public/vsa/``) on the build ``target``
    names."""
    envelope = auditor.vsa(provenance_of(target)).read_bytes()
    return add_verdict(ReleaseContext.of_home(Home(conveyor.path)), envelope, target=target.path)
