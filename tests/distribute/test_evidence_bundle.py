"""Evidence bundles (overt.distribute.bundles): what the repository writes, that an agent reads its evidence
from them, and that a bundle is transport only: what it carries is checked like the file it stands for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from overt.distribute.bundles import EvidenceBundle, metadata_bundle_path, target_bundle_path
from overt.distribute.endpoint import INSTALLED, REFUSED
from overt.distribute.evidence import metadata_evidence, target_evidence
from overt.distribute.verdicts import verdict_index_path
from overt.errors import FormatError
from tests.distribute.world import World


def _timestamp_version(public: Path) -> int:
    return int(json.loads((public / "metadata" / "timestamp.json").read_bytes())["signed"]["version"])


def _bundles(world: World, path: str) -> tuple[Path, Path]:
    public = world.repo.public
    ts = f"{_timestamp_version(public)}.timestamp.json"
    return public / metadata_bundle_path(ts), public / target_bundle_path(path)


def test_a_release_writes_bundles_of_the_exact_evidence_files(world: World) -> None:
    released = world.release("1.0")
    public = world.repo.public
    meta, target = (EvidenceBundle.from_bytes(b.read_bytes()) for b in _bundles(world, released.path))
    for rel, data in (*meta.files, *target.files):
        assert (public / rel).read_bytes() == data, rel
    names = {rel.split("/")[2] for rel, _ in meta.files}
    assert {n.split(".", 1)[1] for n in names} == {
        "timestamp.json",
        "snapshot.json",
        "targets.json",
        "release.json",
        "root.json",
    }
    carried = {rel for rel, _ in target.files}
    files = target_evidence(released.path)
    assert {files.entry, files.proof} <= carried
    assert len([r for r in carried if "/vsa/" in r]) == 4  # the two verdicts, added after the release
    assert verdict_index_path(released.path) not in carried  # the index grows: never bundled


def test_an_update_reads_its_evidence_from_the_bundles(world: World) -> None:
    released = world.release("1.0")
    world.pin()
    public = world.repo.public
    for bundle in _bundles(world, released.path):
        for rel, _ in EvidenceBundle.from_bytes(bundle.read_bytes()).files:
            (public / rel).unlink()  # only the bundles hold them now
    o = world.outcome()
    assert o.status == INSTALLED, o.error
    assert world.installed() == "1.0"


@pytest.mark.parametrize(
    ("replace", "instead", "check"),
    [
        ("provenance", "verdict", "provenance"),
        ("release", "snapshot", "metadata"),
    ],
)
def test_what_a_bundle_carries_is_checked_like_the_file(
    world: World, replace: str, instead: str, check: str
) -> None:
    """A bundle that carries other bytes under a file's path is refused by the check of that file, although
    the file itself, served beside it, is honest."""
    released = world.release("1.0")
    world.pin()
    meta_path, target_path = _bundles(world, released.path)
    bundle_path = target_path if replace == "provenance" else meta_path
    files = dict(EvidenceBundle.from_bytes(bundle_path.read_bytes()).files)

    def entry(kind: str) -> str:
        if kind == "provenance":
            return target_evidence(released.path).entry
        if kind == "verdict":
            return next(r for r in files if r.endswith("vsa.dsse.json"))
        return metadata_evidence(next(r.split("/")[2] for r in files if f".{kind}.json/" in r)).entry

    files[entry(replace)] = files[entry(instead)]
    bundle_path.write_bytes(EvidenceBundle(files=tuple(files.items())).to_bytes())
    o = world.outcome()
    assert o.status == REFUSED and o.check == check, (o.status, o.error)
    assert world.installed() is None


def test_a_bundle_round_trips_and_refuses_what_is_not_evidence() -> None:
    bundle = EvidenceBundle(files=(("evidence/targets/a/provenance.dsse.json", b"\x00\xffx"),))
    assert EvidenceBundle.from_bytes(bundle.to_bytes()) == bundle
    for bad in (
        b'{"files": {"../root.json": ""}}',
        b'{"files": {"metadata/timestamp.json": ""}}',
        b'{"files": {"evidence/a": "not base64!"}}',
        b'{"files": {"evidence/a": 1}}',
        b'{"files": {"evidence/a": "", "evidence/a": ""}}',
    ):
        with pytest.raises(FormatError):
            EvidenceBundle.from_bytes(bad)
