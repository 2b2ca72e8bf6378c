"""A conveyor home with a TUF repository, provenance signed and logged by its builder key, and the repository
served over HTTP on 127.0.0.1 to the stock python-tuf client (no overt code in the client path)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tuf.ngclient import Updater

from overt.attest.provenance import BuildDefinition, Builder, BuildMetadata, Provenance, RunDetails
from overt.attest.statement import ResourceDescriptor
from overt.distribute.checks import ReleaseContext
from overt.distribute.release import ProductRelease, ReleasedTarget, release_product
from overt.distribute.repository import RepositoryContext
from overt.distribute.root import RootKeys, init_repository
from overt.home import Home
from overt.keys.registry import KeyRecord, Role
from overt.keys.signers import generate_file_key
from overt.keys.signing import Signed

ROOT_KEYS, ROOT_THRESHOLD = 3, 2


def add_key(h: Home, role: Role, *, jurisdiction: str = "CH") -> KeyRecord:
    """A software key of ``role`` in the home's registry, active from a minute ago."""
    uri, key = generate_file_key(h.paths.keys, "ed25519")
    record = KeyRecord.create(
        key,
        role=role,
        jurisdiction=jurisdiction,
        valid_from=datetime.now(UTC) - timedelta(minutes=1),
        valid_until=None,
        uri=uri,
    )
    h.registry.save(record)
    return record


def provenance_for(h: Home, data: bytes, name: str, *, builder_id: str | None = None) -> Provenance:
    return Provenance(
        build_definition=BuildDefinition(
            build_type="https://overt.dev/build/bwrap/v1",
            external_parameters={"source": {"uri": "escrow/" + "ab" * 32}},
        ),
        run_details=RunDetails(
            builder=Builder(id=builder_id or h.conveyor.provenance_builder_id),
            metadata=BuildMetadata(started_on="2026-11-28T10:00:00Z", finished_on="2026-11-28T10:01:00Z"),
        ),
    )


def sign_provenance(h: Home, data: bytes, name: str, *, builder_id: str | None = None) -> Signed:
    """SLSA provenance for ``data`` (subject ``name``) signed by the home's builder key and logged."""
    statement = provenance_for(h, data, name, builder_id=builder_id).statement(
        (ResourceDescriptor(name=name, digest={"sha256": hashlib.sha256(data).hexdigest()}),)
    )
    builder = h.registry.current(Role.BUILDER, datetime.now(UTC))
    return h.signing_service().sign(builder, statement)


@dataclass
class Repo:
    """A home with a TUF repository, and its root keys (outside the home)."""

    home: Home
    root_keys: RootKeys
    tmp: Path

    @property
    def ctx(self) -> RepositoryContext:
        return RepositoryContext.of_home(Home(self.home.path))

    @property
    def release_ctx(self) -> ReleaseContext:
        return ReleaseContext.of_home(Home(self.home.path))

    @property
    def public(self) -> Path:
        return self.home.paths.public / "tuf"

    def root_v1(self) -> bytes:
        return (self.public / "metadata" / "1.root.json").read_bytes()

    def release(
        self, data: bytes, name: str, *, product: str = "demo", version: str = "1.0", **kw: str
    ) -> ReleasedTarget:
        signed = sign_provenance(self.home, data, name)
        request = ProductRelease(
            artifact=data, file_name=name, product=product, version=version, provenance=signed.entry, **kw
        )
        return release_product(self.release_ctx, request)


def make_repo(conveyor: Home, tmp_path: Path) -> Repo:
    for role in (Role.TARGETS, Role.SNAPSHOT, Role.TIMESTAMP):
        add_key(conveyor, role)
    keys, _ = init_repository(
        RepositoryContext.of_home(conveyor),
        root_keys_dir=tmp_path / "offline-root-keys",
        count=ROOT_KEYS,
        threshold=ROOT_THRESHOLD,
    )
    return Repo(home=conveyor, root_keys=keys, tmp=tmp_path)


@pytest.fixture
def repo(conveyor: Home, tmp_path: Path) -> Repo:
    """The conveyor fixture (builder and release keys, builder registry) with a TUF repository."""
    return make_repo(conveyor, tmp_path)


@dataclass
class Served:
    """A directory served over HTTP; ``requested`` lists every path asked for, in order."""

    url: str
    requested: list[str] = field(default_factory=list)

    def updater(self, client: Path, bootstrap: bytes) -> Updater:
        """The stock ngclient, bootstrapped from ``bootstrap``, its state in ``client``."""
        (client / "metadata").mkdir(parents=True, exist_ok=True)
        (client / "targets").mkdir(parents=True, exist_ok=True)
        return Updater(
            metadata_dir=str(client / "metadata"),
            metadata_base_url=f"{self.url}/metadata/",
            target_dir=str(client / "targets"),
            target_base_url=f"{self.url}/targets/",
            bootstrap=bootstrap,
        )


@pytest.fixture
def served(repo: Repo) -> Iterator[Served]:
    """``public/tuf`` of the repository served by http.server on 127.0.0.1, as nginx will serve it."""
    result = Served(url="")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            result.requested.append(self.path)

    handler = functools.partial(Handler, directory=str(repo.public))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    result.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def world(conveyor: Home, tmp_path: Path) -> Iterator[object]:
    """An endpoint's world (tests/distribute/world.py): witnesses, repository, auditors, a served public/."""
    from tests.distribute.world import make_world

    yield from make_world(conveyor, tmp_path)


@pytest.fixture
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[Path], object]]:
    """``serve(directory)``: Debian's nginx serving it on 127.0.0.1 (tests/nginx.py), stopped at teardown."""
    from contextlib import ExitStack

    from tests.conftest import require
    from tests.nginx import nginx_binary, nginx_server

    require(nginx_binary() is not None, "nginx not installed (Debian package nginx)")
    with ExitStack() as stack:

        def serve(root: Path) -> object:
            return stack.enter_context(nginx_server(root, tmp_path_factory.mktemp("nginx")))

        yield serve
