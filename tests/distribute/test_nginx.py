"""An endpoint updates through Debian's nginx serving the home's ``public/`` (TUF metadata, targets, evidence,
the log's checkpoint and tiles) as static files, and refuses a tampered target served the same way (issue 12,
point 7)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from overt.distribute.endpoint import INSTALLED, REFUSED
from overt.server.nginx import Nginx
from tests.distribute.world import World


def _through_nginx(world: World, nginx: Callable[[Path], Nginx]) -> Nginx:
    """The policy pinned with nginx's URL; the world's own http.server stopped, so nothing else answers."""
    server = nginx(world.home.paths.public)
    world.pin(world.policy_text().replace(world.site.url, server.url))
    world.site.stop()
    return server


def test_an_endpoint_updates_through_nginx_and_refuses_a_tampered_target(
    world: World, nginx: Callable[[Path], Nginx]
) -> None:
    world.release("1.0")
    server = _through_nginx(world, nginx)
    o = world.outcome()
    assert o.status == INSTALLED and world.installed() == "1.0", o.error
    fetched = server.requested()
    assert any(p.startswith("/tuf/metadata/") for p in fetched)
    assert any(p.startswith("/tuf/targets/products/demo/1.0/") for p in fetched)
    assert "/log/checkpoint" in fetched and any(p.startswith("/log/tile/") for p in fetched)
    # 2.0 is released, then its bytes are altered on the server after signing: nginx serves them, TUF refuses.
    v2 = world.release("2.0")
    served = world.repo.public / "targets" / "products" / "demo" / "2.0" / f"{v2.sha256}.demo.tar.gz"
    data = bytearray(served.read_bytes())
    data[0] ^= 1
    served.write_bytes(bytes(data))
    before = len(server.requested())
    o = world.outcome()
    assert o.status == REFUSED and o.check == "tuf" and "LengthOrHashMismatchError" in str(o.error)
    assert world.installed() == "1.0"
    assert any(f"/2.0/{v2.sha256}.demo.tar.gz" in p for p in server.requested()[before:])
