"""The log's result views (``to_dict()``, what ``overt log/witness/serve --json`` print) and the steps that
moved out of the command line: revising a policy, appending and publishing, a proof under the published
checkpoint, and what a client verified."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from overt.errors import ConfigError, FormatError, UsageError
from overt.home import Home
from overt.tlog.client import LogClient, LogVerification, directory_fetcher, verify_tlog_proof
from overt.tlog.cosignature import CosignatureSigner
from overt.tlog.log import AddedEntries, LogEndpoint
from overt.tlog.policy import Group, Policy, PolicyRevision, PolicyWitness
from overt.tlog.proof import SavedProof, TlogProof
from overt.tlog.witness import (
    FollowedLog,
    WitnessEndpoint,
    WitnessIdentity,
    init_witness,
    load_witness,
    trust_log,
)
from tests.cli.test_cli import overt


def witness(name: str, seed: int, url: str = "") -> PolicyWitness:
    verifier = CosignatureSigner.create(name, bytes([seed]) * 32).verifier()
    return PolicyWitness(name=name, verifier=verifier, url=url or None)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home.init(tmp_path / "home", origin="views.example/log", jurisdiction="CH")


def test_policy_to_dict_is_its_parts_and_its_text(home: Home) -> None:
    pol = home.log.policy().revised(witnesses=[witness("w1", 1, "http://w1.example")], quorum="all")
    out = pol.to_dict()
    (log,) = pol.logs
    assert out == {
        "logs": [{"origin": "views.example/log", "vkey": log.verifier.vkey(), "url": None}],
        "witnesses": [{"name": "w1", "vkey": pol.witnesses[0].verifier.vkey(), "url": "http://w1.example"}],
        "groups": [{"name": "witnesses", "threshold": 1, "members": ["w1"]}],
        "quorum": "witnesses",
        "policy": pol.to_bytes().decode(),
    }
    assert Policy.from_bytes(out["policy"].encode()) == pol
    revision = PolicyRevision(policy=pol, changed=True, path=home.log.paths.policy).to_dict()
    assert revision == {**out, "changed": True, "path": str(home.log.paths.policy)}


def test_revising_a_policy_replaces_witnesses_by_name_and_recomputes_the_quorum(home: Home) -> None:
    base = home.log.policy()
    assert base.revised() is base
    two = base.revised(witnesses=[witness("w1", 1), witness("w2", 2)], quorum="2")
    assert [w.name for w in two.witnesses] == ["w1", "w2"]
    assert two.groups == (Group(name="witnesses", threshold=2, members=("w1", "w2")),)
    # A new key for w1 replaces it (moved last); the quorum is given again ("2" of 2 also reads as all).
    moved = two.revised(witnesses=[witness("w1", 3), witness("w3", 4)], quorum="2")
    assert [w.name for w in moved.witnesses] == ["w2", "w1", "w3"]
    assert moved.witnesses[1].verifier.vkey() == witness("w1", 3).verifier.vkey()
    assert moved.groups == (Group(name="witnesses", threshold=2, members=("w2", "w1", "w3")),)
    # Given twice in one revision, the last one given is kept.
    twice = base.revised(witnesses=[witness("w1", 1), witness("w1", 5)], quorum="any")
    assert [w.verifier.vkey() for w in twice.witnesses] == [witness("w1", 5).verifier.vkey()]
    assert moved.revised(quorum="none").groups == () and moved.revised(quorum="none").quorum == "none"
    with pytest.raises(ConfigError, match=r"none, all, any or 1\.\.3"):
        moved.revised(quorum="4")
    with pytest.raises(ConfigError, match="needs witnesses"):
        base.revised(quorum="all")


def test_add_and_publish_then_a_proof_under_the_published_checkpoint(home: Home, tmp_path: Path) -> None:
    log = home.log.open()
    try:
        with pytest.raises(UsageError, match="not in the published tree of size 0"):
            log.published_proof(0)
        added = log.add_and_publish([b"one", b"two"], names=["e1", "e2"])
        proof = log.published_proof(1)
        with pytest.raises(UsageError, match="entry 2 is not in the published tree of size 2"):
            log.published_proof(2)
    finally:
        log.close()
    assert added.indices == (0, 1) and added.published and added.publication is not None
    out = added.to_dict()
    assert out == {
        "entries": [{"file": "e1", "index": 0}, {"file": "e2", "index": 1}],
        **added.publication.to_dict(),
    }
    assert out["tree_size"] == 2 and out["published"] is True
    assert (proof.index, proof.tree_size) == (1, 2)
    assert verify_tlog_proof(proof, b"two", home.log.policy()) == frozenset()
    assert TlogProof.from_bytes(proof.to_dict()["proof"].encode()) == proof
    assert proof.to_dict() == {"index": 1, "tree_size": 2, "proof": proof.to_bytes().decode()}
    saved = tmp_path / "e2.proof"
    assert SavedProof(proof=proof, path=saved).to_dict() == {"index": 1, "tree_size": 2, "out": str(saved)}


def test_a_log_with_no_published_checkpoint_has_no_proof(tmp_path: Path, home: Home) -> None:
    (home.log.paths.public / "checkpoint").unlink()
    log = home.log.read()
    try:
        with pytest.raises(ConfigError, match="no published checkpoint yet"):
            log.published_proof(0)
    finally:
        log.close()


def test_entries_added_through_a_server_say_so() -> None:
    added = AddedEntries(names=("f",), indices=(7,), published=False, through="http://127.0.0.1:1")
    assert added.to_dict() == {
        "entries": [{"file": "f", "index": 7}],
        "through": "http://127.0.0.1:1",
        "published": False,
    }
    with pytest.raises(ValueError, match="either here"):
        AddedEntries(names=("f",), indices=(7,), published=True)
    with pytest.raises(ValueError, match="one index per named entry"):
        AddedEntries(names=("f", "g"), indices=(7,), published=True, through="http://x")


def test_what_a_client_verified(home: Home) -> None:
    log = home.log.open()
    try:
        log.add_and_publish([b"one", b"two", b"three"], names=["1", "2", "3"])
        proof = log.published_proof(2)
    finally:
        log.close()
    client = LogClient(directory_fetcher(home.log.paths.public), home.log.policy())
    tree = client.update()
    online = LogVerification.of_tree(tree, log="L", trust="T", quorum="none", included=("e3", 2)).to_dict()
    cp = tree.checkpoint.checkpoint
    assert online == {
        "ok": True,
        "log": "L",
        "trust": "T",
        "checks": ["log signature", "witness quorum (none)", "inclusion of e3 at index 2"],
        "tree_size": 3,
        "cosigners": [],
        "origin": "views.example/log",
        "root_hash": base64.b64encode(cp.root_hash).decode(),
        "previous_size": None,
        "index": 2,
    }
    bare = LogVerification.of_tree(tree, log="L", trust="T", quorum="none").to_dict()
    assert "index" not in bare and bare["checks"] == ["log signature", "witness quorum (none)"]
    cosigners = verify_tlog_proof(proof, b"three", home.log.policy())
    offline = LogVerification.of_proof(proof, cosigners, log="L", trust="T", path="p.proof").to_dict()
    assert offline == {
        "ok": True,
        "log": "L",
        "trust": "T",
        "checks": ["log signature", "witness quorum", "inclusion"],
        "tree_size": 3,
        "cosigners": [],
        "proof": "p.proof",
        "index": 2,
    }
    json.dumps([online, bare, offline])


def test_witness_and_server_views(home: Home, tmp_path: Path) -> None:
    wdir = tmp_path / "w"
    identity = WitnessIdentity.of(wdir, init_witness(wdir, "w.views.example"))
    assert identity.to_dict() == {
        "home": str(wdir),
        "name": "w.views.example",
        "vkey": (wdir / "witness.vkey").read_text().strip(),
    }
    vkey = home.log.paths.vkey.read_text().strip()
    followed = FollowedLog(home=wdir, origin=trust_log(wdir, vkey).name, vkey=vkey)
    assert followed.to_dict() == {"home": str(wdir), "origin": "views.example/log", "vkey": vkey}
    with load_witness(wdir) as w:
        served = WitnessEndpoint.of(w, "http://127.0.0.1:9")
    assert served.to_dict() == {
        "witness": "w.views.example",
        "url": "http://127.0.0.1:9",
        "following": ["views.example/log"],
    }
    endpoint = LogEndpoint(public=home.paths.public, url="http://127.0.0.1:8")
    assert endpoint.to_dict() == {"public": str(home.paths.public), "url": "http://127.0.0.1:8"}


def test_a_policy_that_cannot_be_built_is_refused(home: Home) -> None:
    with pytest.raises(FormatError, match="same witness key twice"):
        home.log.policy().revised(witnesses=[witness("w1", 1), witness("w2", 1)], quorum="any")


def test_a_quorum_of_all_never_quietly_becomes_fewer(home: Home) -> None:
    one = home.log.policy().revised(witnesses=[witness("w1", 1, "http://w1.example")], quorum="all")
    # "1 of 1" was set as all (or any, or 1): adding w2 must not make it 1 of 2 unasked.
    with pytest.raises(ConfigError, match=r"1 of the 1 witnesses w1 \(all of them, any or 1\).*--quorum"):
        one.revised(witnesses=[witness("w2", 2, "http://w2.example")])
    two = one.revised(witnesses=[witness("w2", 2, "http://w2.example")], quorum="all")
    assert two.groups == (Group(name="witnesses", threshold=2, members=("w1", "w2")),)
    with pytest.raises(ConfigError, match=r"2 of the 2 witnesses w1, w2 \(all of them, or 2\)"):
        two.revised(witnesses=[witness("w3", 3)])
    # k of more than k stays k; all of them, less one removed, is all of the rest; a new key changes nothing.
    three = two.revised(witnesses=[witness("w3", 3)], quorum="2")
    assert three.revised(witnesses=[witness("w4", 4)]).groups[0].threshold == 2
    assert two.revised(remove=["w2"]).groups == (Group(name="witnesses", threshold=1, members=("w1",)),)
    assert two.revised(witnesses=[witness("w2", 5)]).groups == two.groups
    with pytest.raises(ConfigError, match=r"no witness 'w9' to remove \(its witnesses: w1, w2\)"):
        two.revised(remove=["w9"])
    with pytest.raises(ConfigError, match="give --quorum none"):
        one.revised(remove=["w1"])
    assert one.revised(remove=["w1"], quorum="none") == home.log.policy()


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("w1", "not a url"),
        ("w1", "ftp://w1.example"),
        ("w1", "http://w1.example/\nquorum none"),
        ("w1", "http://"),
        ("w1", "https://w1.example/\x7f"),
        ("w 1", "http://w1.example"),
        ("w1\nquorum", "http://w1.example"),
        ("", "http://w1.example"),
    ],
)
def test_a_witness_no_policy_line_can_carry_is_never_built(home: Home, name: str, url: str) -> None:
    with pytest.raises(FormatError, match=r"witness (name|URL)"):
        PolicyWitness(name=name, verifier=witness("w1", 1).verifier, url=url)
    before = home.log.paths.policy.read_bytes()
    spec = f"{name}={witness('w1', 1).verifier.vkey()}={url}"
    r = overt("log", "policy", "--home", str(home.path), "--add-witness", spec)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert home.log.paths.policy.read_bytes() == before
    assert Home(home.path).log.policy() == home.log.policy()


def test_a_witness_is_removed_by_name(home: Home) -> None:
    H = ("--home", str(home.path))
    for name, seed in (("w1", 1), ("w2", 2)):
        spec = f"{name}={witness(name, seed).verifier.vkey()}=http://{name}.example"
        assert overt("log", "policy", *H, "--add-witness", spec, "--quorum", "all").returncode == 0
    r = overt("log", "policy", *H, "--remove-witness", "w1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-2:] == ["group witnesses 1 w2", "quorum witnesses"]
    assert [w.name for w in Home(home.path).log.policy().witnesses] == ["w2"]
    r = overt("log", "policy", *H, "--remove-witness", "w1")
    assert r.returncode == 2 and "no witness 'w1' to remove" in r.stderr
