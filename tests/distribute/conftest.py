"""A conveyor home with a TUF repository, provenance signed and logged by its builder key, and the repository
served over HTTP on 127.0.0.1 to the stock python-tuf client (no overt code in the client path)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tuf.ngclient import Updater

from overt.distribute.checks import ReleaseContext
from overt.distribute.release import ProductRelease, ReleasedTarget, release_product
from overt.distribute.repository import RepositoryContext
from overt.distribute.root import RootKeys
from overt.distribute.testbed import add_key, init_tuf, sign_provenance
from overt.home import Home
from overt.server.static import StaticSite

__all__ = ["ROOT_KEYS", "ROOT_THRESHOLD", "Repo", "Served", "add_key", "sign_provenance"]

ROOT_KEYS, ROOT_THRESHOLD = 3, 2


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
    keys = init_tuf(conveyor, tmp_path / "offline-root-keys", count=ROOT_KEYS, threshold=ROOT_THRESHOLD)
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
    with StaticSite(repo.public) as site:
        yield Served(url=site.url, requested=site.requested)


@pytest.fixture
def world(conveyor: Home, tmp_path: Path) -> Iterator[object]:
    """An endpoint's world (tests/distribute/world.py): witnesses, repository, auditors, a served public/."""
    from tests.distribute.world import make_world

    yield from make_world(conveyor, tmp_path)


@pytest.fixture
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[Path], object]]:
    """``serve(directory)``: Debian's nginx serving it on 127.0.0.1 (overt.server.nginx), stopped at teardown."""
    from contextlib import ExitStack

    from overt.server.nginx import nginx_binary, nginx_server
    from tests.conftest import require

    require(nginx_binary() is not None, "nginx not installed (Debian package nginx)")
    with ExitStack() as stack:

        def serve(root: Path) -> object:
            return stack.enter_context(nginx_server(root, tmp_path_factory.mktemp("nginx")))

        yield serve
