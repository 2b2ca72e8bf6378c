"""Demo stage "the same update for everyone": the conveyor's TUF repository, a product and an AV database
released into it, an endpoint agent that updates through nginx and says why it trusted each update, and two
attacks it refuses while keeping its installed version: a tampered download and a targeted update (metadata
signed with the vendor's own keys, served to this endpoint alone and never logged).

Everything is the real code: ``overt tuf init``'s :func:`~overt.distribute.root.init_repository` (root keys
offline, outside the home), ``overt release``'s :func:`~overt.distribute.release.release_product` and
:func:`~overt.distribute.databases.release_database`, ``overt tuf add-verdict``, ``overt agent
init|update|status``. The verdicts are the two independent auditors' (:mod:`overt.demo.auditor_stage`): each
rebuilt the builds from the escrow and logged a PASSED VSA naming the provenance; the vendor publishes them
beside each release, and the customer's policy requires both auditors' keys. Without a build sandbox the build
stage made no product, so the product claim is ``skipped`` and the stage carries on with the database. Without
nginx, Python's http.server serves, and the claims say so.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from overt.attest.statement import format_timestamp
from overt.auditor.home import AuditorHome
from overt.build.sandbox import check_sandbox
from overt.demo.auditor_stage import auditor_homes
from overt.demo.claims import Claim, Promise, Stage, Status
from overt.demo.context import DemoContext
from overt.distribute.agentdir import AgentLayout, TrustRecord, file_sha256, pin_policy
from overt.distribute.channels import CARRIES_AVDB, ChannelIndex
from overt.distribute.checks import ReleaseContext
from overt.distribute.databases import release_database
from overt.distribute.endpoint import INSTALLED, REFUSED, FollowOutcome, update_endpoint
from overt.distribute.layout import RepositoryLayout, avdb_path
from overt.distribute.offline import OfflineVerification, verify_offline
from overt.distribute.release import ProductRelease, ReleasedTarget, build_provenance, release_product
from overt.distribute.repository import NewTarget, RepositoryContext
from overt.distribute.root import RootKeys, init_repository
from overt.distribute.state import load_repository_state
from overt.distribute.status import RepositoryStatus, repository_status
from overt.distribute.testbed import forge_targets, trust_policy_text
from overt.distribute.trust import DATABASE, TrustPolicy
from overt.distribute.verdicts import add_verdict
from overt.errors import Error, VerificationError
from overt.home import Home
from overt.keys.lifecycle import generate_key
from overt.keys.registry import Role
from overt.server.nginx import nginx_binary, nginx_server
from overt.server.static import StaticSite

SAME = Promise.SAME_UPDATE_FOR_EVERYONE
PRODUCT, PRODUCT_VERSION, ARTIFACT = "sample-agent", "1.0", "sample-agent-1.0.tar.gz"
DATABASE_NAME = "demo"  # the AV database the avdb stage built, versions 1 and 2
ROOT_KEYS, ROOT_THRESHOLD, AUDITORS_NEEDED = 3, 2, 2
AUDITORS = "the two independent auditors"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Site:
    """What serves ``www/`` (``tuf/`` and ``log/``, links into the conveyor's ``public/``) to the endpoint."""

    url: str
    www: Path
    server: str  # as the claims say it
    requested: Callable[[], list[str]]

    def serve_tuf(self, tree: Path) -> None:
        """Serve ``tree`` as ``tuf/`` from now on: the link is replaced by a rename, so no request sees none."""
        new = self.www / ".tuf.new"
        new.unlink(missing_ok=True)
        new.symlink_to(tree)
        os.replace(new, self.www / "tuf")


@contextmanager
def _serving(ctx: DemoContext) -> Iterator[_Site]:
    """Debian's nginx (its prefix in ``nginx/``) serving ``www/`` on loopback, else Python's http.server."""
    www = ctx.root / "www"
    www.mkdir()
    (www / "log").symlink_to(ctx.home.log.paths.public)
    (www / "tuf").symlink_to(RepositoryLayout(ctx.home.path).public)
    binary = nginx_binary()
    if binary is None:
        with StaticSite(www) as site:
            yield _Site(
                url=site.url,
                www=www,
                server="Python's http.server: nginx is not installed",
                requested=lambda: list(site.requested),
            )
        return
    with nginx_server(www, ctx.root / "nginx", binary) as nginx:
        yield _Site(url=nginx.url, www=www, server=f"Debian's nginx ({binary})", requested=nginx.requested)


@dataclass(slots=True)
class _Distribution:
    """What the stage has made so far: the repository, the auditors, the releases, the endpoint."""

    ctx: DemoContext
    root_keys: RootKeys
    auditors: tuple[AuditorHome, ...]  # the independent auditors' homes, read once
    product: ReleasedTarget | str  # the release, or why there is none
    databases: dict[int, ReleasedTarget] = field(default_factory=dict)

    @property
    def layout(self) -> RepositoryLayout:
        return RepositoryLayout(self.ctx.home.path)

    @property
    def agent(self) -> Path:
        return self.ctx.root / "endpoint"

    @property
    def policy(self) -> Path:
        return self.ctx.root / "customer" / "policy.toml"

    def release_context(self) -> ReleaseContext:
        return ReleaseContext.of_home(Home(self.ctx.home.path))

    def release_database(self, version: int) -> ReleasedTarget:
        """``overt release --avdb demo --version N``, then each auditor's verdict on its build published."""
        released = release_database(self.release_context(), name=DATABASE_NAME, version=version)
        publish_verdicts(self.ctx, self.auditors, released)
        self.databases[version] = released
        return released

    def verify(self, artifact: bytes, *, name: str, evidence: Path, target: str) -> OfflineVerification:
        """``overt verify ARTIFACT --evidence DIR --policy customer/policy.toml --target T``, in process."""
        trust = TrustPolicy.from_file(self.policy)
        return verify_offline(
            artifact, name=name, evidence=evidence, trust=trust, now=datetime.now(UTC), target=target
        )

    def refused_offline(self, path: Path, *, evidence: Path, target: str, check: str) -> None:
        """The offline check refuses ``path`` as ``target`` at ``check``; raises if it verifies or another
        check refuses (the re-check command would then not show what the claim says)."""
        try:
            self.verify(path.read_bytes(), name=str(path), evidence=evidence, target=target)
        except VerificationError as e:
            if e.evidence.get("check") != check:
                raise
        else:
            raise VerificationError(f"{path} verified offline as {target}")


def _new_repository(ctx: DemoContext) -> RootKeys:
    """``overt keys generate`` for the online roles, then ``overt tuf init`` with root keys outside the home."""
    h = ctx.home
    for role in (Role.TARGETS, Role.SNAPSHOT, Role.TIMESTAMP):
        generate_key(h.key_home(), h.signing_service(), role=role, now=datetime.now(UTC))
    keys, _ = init_repository(
        RepositoryContext.of_home(Home(h.path)),
        root_keys_dir=ctx.root / "tuf-root-keys",
        count=ROOT_KEYS,
        threshold=ROOT_THRESHOLD,
    )
    return keys


def publish_verdicts(ctx: DemoContext, homes: Sequence[AuditorHome], released: ReleasedTarget) -> None:
    """``overt tuf add-verdict`` of each auditor's VSA on the build ``released`` names (its provenance), from
    the auditor's ``public/vsa/``: the vendor publishes verdicts it did not write and cannot change."""
    provenance = released.custom["overt"]["provenance"]["sha256"]
    for home in homes:
        vsa = home.paths.vsa(provenance)
        if not vsa.is_file():
            raise VerificationError(
                f"auditor {home.config.auditor.name} published no verdict on {released.path}"
            )
        add_verdict(ReleaseContext.of_home(Home(ctx.home.path)), vsa.read_bytes(), target=released.path)


def _release_product(ctx: DemoContext, homes: Sequence[AuditorHome]) -> ReleasedTarget | str:
    """``overt release`` of the build stage's output, with the provenance it logged; or why there is none."""
    builds = ctx.home.paths.builds
    found = sorted(builds.glob(f"*/dist/{ARTIFACT}"))
    if not found:
        try:
            check_sandbox()
        except Error as e:
            return f"the build stage could not run the build sandbox ({e}), so there is no product to release"
        raise VerificationError(f"the build stage left no {ARTIFACT} in {builds}")
    artifact = found[0]
    request = ProductRelease(
        artifact=artifact.read_bytes(),
        file_name=artifact.name,
        product=PRODUCT,
        version=PRODUCT_VERSION,
        provenance=build_provenance(artifact, builds).read_bytes(),
    )
    released = release_product(ReleaseContext.of_home(Home(ctx.home.path)), request)
    publish_verdicts(ctx, homes, released)
    return released


def _pin(d: _Distribution, site: _Site) -> TrustPolicy:
    """The customer's trust policy, written beside the TUF root and the log policy it got out of band, and
    pinned into the endpoint (``overt agent init --policy customer/policy.toml --dir endpoint``)."""
    customer = d.policy.parent
    customer.mkdir()
    root = customer / "root.json"
    shutil.copy(d.layout.metadata / "1.root.json", root)
    (customer / "log.policy").write_bytes(d.ctx.pinned_policy.read_bytes())
    follow = [("database", DATABASE_NAME)]
    if isinstance(d.product, ReleasedTarget):
        follow.insert(0, ("product", PRODUCT))
    auditors = [h.paths.public_keys / f"{h.key.keyid}.json" for h in d.auditors]
    text = trust_policy_text(
        d.ctx.home, url=site.url, root=root, auditors=auditors, threshold=AUDITORS_NEEDED, follow=follow
    )
    d.policy.write_text(text)
    return pin_policy(AgentLayout(d.agent), d.policy).policy


def _database_outcome(outcomes: Sequence[FollowOutcome]) -> FollowOutcome:
    (found,) = [o for o in outcomes if o.follow.kind == DATABASE]
    return found


def _kept(o: FollowOutcome, version: str, check: str) -> str:
    """``o`` is a refusal by ``check`` that left ``version`` installed, intact; the reason it gave."""
    r = o.record
    if o.status != REFUSED or o.check != check or r is None or r.version != version:
        raise VerificationError(
            f"{o.follow.label}: expected a refusal by the {check} check keeping version {version}, got "
            f"{o.status} ({o.check}: {o.error}), installed {None if r is None else r.version}"
        )
    if file_sha256(Path(r.installed)) != r.sha256:
        raise VerificationError(f"the installed {r.installed} changed during a refused update")
    return str(o.error)


def _why(r: TrustRecord) -> str:
    metadata = ", ".join(f"{name} (entry {index})" for name, index in r.metadata)
    return (
        f"{r.follow.label} {r.version}, sha256 {r.sha256[:16]}: its provenance is log entry "
        f"{r.provenance_index}; the metadata it was found through is {metadata}; checked against the log "
        f"head of size {r.checkpoint.get('tree_size')}, cosigned by {' and '.join(r.cosigners)}; PASSED by "
        f"auditors {' and '.join(a[:16] for a in r.auditors)}"
    )


def _first_update(d: _Distribution, site: _Site, trust: TrustPolicy) -> Claim:
    update = update_endpoint(d.agent)
    records = []
    for o in update.outcomes:
        if o.status != INSTALLED or o.record is None:
            raise VerificationError(f"the endpoint did not install {o.follow.label}: {o.status}: {o.error}")
        if set(o.record.auditors) != {a.key.keyid for a in d.auditors}:
            raise VerificationError(f"{o.follow.label} was trusted on auditors {o.record.auditors}")
        records.append(o.record)
    asked = site.requested()
    if not {"/tuf/metadata/timestamp.json", "/log/checkpoint"} <= set(asked):
        raise VerificationError(f"the endpoint did not read the repository and the log through {site.url}")
    ctx = d.ctx
    return Claim(
        id="distribute.endpoint-trusted",
        promise=Promise.NOTHING_SIGNED_IN_SECRET,
        status=Status.PROVED,
        check=f"the endpoint agent, under the trust policy the customer pinned (the TUF root version 1 by its "
        f"sha256, the log's key and its witnesses, {trust.auditor_threshold} of {len(trust.auditor_keys)} "
        f"auditor keys, the independent auditors', and the builder), updated through {site.server} ({len(asked)} requests) and installed "
        f"{' and '.join(r.follow.label for r in records)}. Why it trusted each: "
        + "; ".join(_why(r) for r in records),
        evidence=ctx.rel(AgentLayout(d.agent).records),
        recheck=ctx.overt("agent", "status", "--dir", d.agent, "--json"),
        facts={"server": site.server, "requests": len(asked), "installed": [r.to_dict() for r in records]},
    )


def _served_files(d: _Distribution, released: ReleasedTarget) -> list[Path]:
    """The files the repository serves for ``released`` and its delta, under their consistent names."""
    listed = load_repository_state(d.layout).released()
    paths = [released.path] + ([released.delta] if released.delta else [])
    return [d.layout.target_file(p, listed[p].hashes["sha256"]) for p in paths]


def _tampered(d: _Distribution) -> Claim:
    """Database v2 released, then one byte of it and of its delta changed as served: refused, v1 kept."""
    v1, v2 = d.databases[1], d.release_database(2)
    originals = {path: path.read_bytes() for path in _served_files(d, v2)}
    altered = {}
    for path, data in originals.items():
        changed = bytearray(data)
        changed[len(changed) // 2] ^= 0x01
        altered[path] = bytes(changed)
        path.write_bytes(altered[path])
    try:
        o = _database_outcome(update_endpoint(d.agent).outcomes)
    finally:
        for path, data in originals.items():
            path.write_bytes(data)
    reason = _kept(o, "1", "tuf")
    saved = d.ctx.write_evidence("tampered-2.avdb", altered[d.layout.target_file(v2.path, v2.sha256)])
    d.refused_offline(saved, evidence=d.layout.public, target=v2.path, check="artifact")
    ctx = d.ctx
    return Claim(
        id="distribute.tampered-refused",
        promise=SAME,
        status=Status.PROVED,
        check=f"AV database {DATABASE_NAME} v2 was released with its delta {v2.delta} and the auditors' "
        f"verdicts; then one byte of each file was changed where the web server serves them. The agent "
        f"refused the update at the TUF check ({reason}) and kept v1 (sha256 {v1.sha256[:16]}, unchanged on "
        f"disk); the served files were then restored. Offline, the altered database is refused as not "
        f"being {v2.path}",
        evidence=ctx.rel(saved),
        recheck=ctx.overt(
            "verify",
            saved,
            "--evidence",
            d.layout.public,
            "--policy",
            d.policy,
            "--target",
            v2.path,
            exit_code=1,
        ),
        facts={"check": o.check, "kept_version": "1", "altered": [ctx.rel(p) for p in originals]},
    )


def _through_delta(d: _Distribution) -> Claim:
    """The honest v2, served again: installed through its delta, and verified offline from the evidence."""
    v2 = d.databases[2]
    o = _database_outcome(update_endpoint(d.agent).outcomes)
    r = o.record
    if o.status != INSTALLED or r is None or r.version != "2" or not r.via_delta or r.sha256 != v2.sha256:
        raise VerificationError(f"the endpoint did not install v2 through its delta: {o.status}: {o.error}")
    installed = Path(r.installed)
    offline = d.verify(installed.read_bytes(), name=str(installed), evidence=d.layout.public, target=v2.path)
    ctx = d.ctx
    return Claim(
        id="distribute.update-through-delta",
        promise=SAME,
        status=Status.PROVED,
        check=f"with the files restored, the endpoint installed database v2 through the delta {v2.delta}: the "
        f"result has the sha256 the logged provenance names ({v2.sha256[:16]}); {_why(r)}. Anyone holding "
        f"the file and the published evidence reaches the same verdict offline: "
        f"{len(offline.checks)} checks passed",
        evidence=ctx.rel(installed),
        recheck=ctx.overt(
            "verify", installed, "--evidence", d.layout.public, "--policy", d.policy, "--target", v2.path
        ),
        facts={"version": r.version, "via_delta": r.via_delta, "checks": [c.check for c in offline.checks]},
    )


def _forged_tree(d: _Distribution) -> tuple[Path, str, tuple[str, ...]]:
    """A copy of the served repository in ``targeted/`` whose new release listing (signed with the vendor's
    own release, snapshot and timestamp keys, never logged) offers database v3: v1's bytes under a higher
    version. Returns the forged tree, the offered file in it, and the metadata files forged."""
    fake = d.ctx.root / "targeted"
    forged = RepositoryLayout(fake)
    shutil.copytree(d.layout.public, forged.public, symlinks=True)
    v1 = d.databases[1]
    data = d.layout.target_file(v1.path, v1.sha256).read_bytes()
    path = avdb_path(DATABASE_NAME, 3)
    custom = {"overt": {**v1.custom["overt"], "version": 3}}
    index = ChannelIndex(
        carries=CARRIES_AVDB,
        name=DATABASE_NAME,
        channel="",
        version="3",
        target=path,
        sha256=v1.sha256,
        length=len(data),
    )
    names = forge_targets(
        d.ctx.home, fake, [NewTarget(path=path, data=data, custom=custom), index.new_target()]
    )
    return forged.public, path, names


def _targeted(d: _Distribution, site: _Site) -> Claim:
    tree, path, names = _forged_tree(d)
    site.serve_tuf(tree)
    try:
        o = _database_outcome(update_endpoint(d.agent).outcomes)
    finally:
        site.serve_tuf(d.layout.public)
    reason = _kept(o, "2", "metadata")
    if not any(c.check == "tuf" for c in o.checks):
        raise VerificationError(f"the TUF client did not accept the targeted update: {o.error}")
    offered = RepositoryLayout(tree.parent.parent).target_file(path, d.databases[1].sha256)
    d.refused_offline(offered, evidence=tree, target=path, check="metadata")
    ctx = d.ctx
    return Claim(
        id="distribute.targeted-update-refused",
        promise=SAME,
        status=Status.PROVED,
        check=f"a targeted update: the vendor's own release, snapshot and timestamp keys signed "
        f"{', '.join(names)}, offering database v3 (v1's signed bytes under a higher version), never logged; "
        f"the same server, at the same address, served it to this endpoint alone (for one update, www/tuf "
        f"pointed at {ctx.rel(tree)}). The TUF client accepted the signatures; overt's metadata check "
        f"refused it ({reason}) and the endpoint kept v2. Every metadata file an install rests on must be a "
        f"log entry anyone can check, so an update made for one endpoint cannot be installed",
        evidence=ctx.rel(tree / "metadata" / "timestamp.json"),
        recheck=ctx.overt(
            "verify", offered, "--evidence", tree, "--policy", d.policy, "--target", path, exit_code=1
        ),
        facts={"check": o.check, "kept_version": "2", "forged": list(names), "offered": path},
    )


def _repository_claim(d: _Distribution) -> Claim:
    """Checked last: every metadata file the repository serves after the whole stage is proved logged."""
    ctx, keys = d.ctx, d.root_keys
    home = ctx.home.path.resolve()
    if any(Path(r.uri.removeprefix("file2:")).resolve().is_relative_to(home) for r in keys.records):
        raise VerificationError("a TUF root key was written inside the conveyor home")
    status = repository_status(RepositoryContext.of_home(Home(ctx.home.path)))
    if status.unlogged or status.expired:
        raise VerificationError(f"the repository serves unlogged or expired metadata: {status.to_dict()}")
    roles = ", ".join(f"{r.role} v{r.version}" for r in status.roles)
    return Claim(
        id="distribute.metadata-logged",
        promise=SAME,
        status=Status.PROVED,
        check=f"the conveyor's TUF repository has its root signed by {keys.threshold} of {len(keys.records)} "
        f"offline keys, written to {ctx.rel(keys.directory)}/ outside the conveyor home, which keeps none of "
        f"them; targets, snapshot and timestamp are signed by online keys in the home, and release by the "
        f"release key. Each metadata version is logged by the digest of its exact bytes: after the stage "
        f"({roles}; {status.targets} targets) every metadata file served is proved logged under the witness "
        f"quorum. The re-check also checks expiry, so it holds until the "
        f"timestamp expires ({_expires(status, 'timestamp')})",
        evidence=ctx.rel(d.layout.metadata),
        recheck=ctx.overt("tuf", "status", "--home", ctx.home.path),
        facts={"root_threshold": keys.threshold, "root_keys": len(keys.records), "targets": status.targets},
    )


def _expires(status: RepositoryStatus, role: str) -> str:
    (found,) = [r for r in status.roles if r.role == role]
    return format_timestamp(found.expires)


def _product_claim(d: _Distribution) -> Claim:
    ctx, source = d.ctx, Promise.BUILT_FROM_AUDITED_SOURCE
    if isinstance(d.product, str):
        return Claim(id="distribute.product-released", promise=source, status=Status.SKIPPED,
                     check=f"not checked: {d.product}", evidence=ctx.rel(ctx.root / "sample-agent-src"),
                     recheck_unavailable="no product was built, so none was released")  # fmt: skip
    r = d.product
    artifact = d.layout.target_file(r.path, r.sha256)
    offline = d.verify(artifact.read_bytes(), name=str(artifact), evidence=d.layout.public, target=r.path)
    return Claim(
        id="distribute.product-released",
        promise=source,
        status=Status.PROVED,
        check=f"'overt release' published the build's {ARTIFACT} as {r.path} (sha256 {r.sha256[:16]}) only "
        f"after checking the provenance the build logged: log entry {r.provenance_index}, included under a "
        f"checkpoint cosigned by {' and '.join(r.cosigners)}, signed by the home's builder key, naming a "
        f"builder the registry binds to {ctx.home.conveyor.jurisdiction}. {AUDITORS.capitalize()} each "
        f"rebuilt it from the escrow and logged a PASSED verdict on its exact digest and provenance, published "
        f"beside it. Offline, the released file "
        f"passes {len(offline.checks)} checks",
        evidence=ctx.rel(artifact),
        recheck=ctx.overt(
            "verify", artifact, "--evidence", d.layout.public, "--policy", d.policy, "--target", r.path
        ),
        facts={"target": r.path, "sha256": r.sha256, "provenance_log_index": r.provenance_index},
    )


def _database_claim(d: _Distribution) -> Claim:
    ctx, v1, v2 = d.ctx, d.databases[1], d.databases[2]
    artifact = d.layout.target_file(v1.path, v1.sha256)
    d.verify(artifact.read_bytes(), name=str(artifact), evidence=d.layout.public, target=v1.path)
    return Claim(
        id="distribute.database-released",
        promise=Promise.NO_DOCUMENT_HUNTING,
        status=Status.PROVED,
        check=f"'overt release --avdb' published AV database {DATABASE_NAME} v1 as {v1.path} (sha256 "
        f"{v1.sha256[:16]}), and later v2 with the transport-only delta {v2.delta}, each only after finding "
        f"in the log, under the witness quorum, its provenance (entries {v1.provenance_index} and "
        f"{v2.provenance_index}) and the audit report that passed its rules; {AUDITORS} each rebuilt both "
        f"to the same bytes and logged a PASSED verdict on each",
        evidence=ctx.rel(artifact),
        recheck=ctx.overt(
            "verify", artifact, "--evidence", d.layout.public, "--policy", d.policy, "--target", v1.path
        ),
        facts={"versions": {str(v): r.sha256 for v, r in d.databases.items()}, "delta": v2.delta},
    )


def distribute_stage(ctx: DemoContext) -> Stage:
    homes = auditor_homes(ctx)
    root_keys = _new_repository(ctx)
    d = _Distribution(ctx=ctx, root_keys=root_keys, auditors=homes, product=_release_product(ctx, homes))
    d.release_database(1)
    with _serving(ctx) as site:
        trust = _pin(d, site)
        updated = _first_update(d, site, trust)
        tampered = _tampered(d)
        through_delta = _through_delta(d)
        targeted = _targeted(d, site)
    return Stage(
        name="distribute",
        title="the same update for everyone",
        setup=f"the conveyor's TUF repository and log are served by {site.server}; an endpoint agent (the "
        f"stock python-tuf client, then overt's checks) follows {' and '.join(f.label for f in trust.follows)}",
        claims=(
            _repository_claim(d),
            _product_claim(d),
            _database_claim(d),
            updated,
            tampered,
            through_delta,
            targeted,
        ),
    )
