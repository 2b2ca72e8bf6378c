"""Signing and verification benchmark: ``python -m benchmarks.sign [--seconds S]``.

Measures, in one run on this machine:

* sign and verify operations/s for software keys (``file2:``, Ed25519 and ECDSA P-256);
* sign operations/s for keys on a SoftHSM2 token (``hsm:``; Ed25519 via CKM_EDDSA, ECDSA via securesystemslib's
  HSMSigner, which opens a PKCS#11 session per signature) and verify operations/s of their signatures;
* DSSE envelope verification (parse the JSON envelope, PAE, Ed25519 check, parse the in-toto statement), and the
  envelope-only part next to securesystemslib's own ``dsse.Envelope`` verification of the same envelope (the
  peer, which parses no statement), with the ratio;
* policy-checked sign-and-log throughput through a real home (each signature appended and a checkpoint published).

The last line is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

SOFTHSM_MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")


def rate(fn: Callable[[], object], seconds: float) -> float:
    fn()  # warm up
    n = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(10):
            fn()
        n += 10
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="overt-bench-sign-"))
    figures: dict[str, object] = {"seconds_per_figure": args.seconds, "cores": os.cpu_count()}

    # The token must exist before any PKCS#11 module is loaded in this process.
    module = next((m for m in SOFTHSM_MODULES if Path(m).exists()), None)
    if module and shutil.which("softhsm2-util"):
        (work / "tokens").mkdir()
        conf = work / "softhsm2.conf"
        conf.write_text(
            f"directories.tokendir = {work / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
        )
        os.environ["SOFTHSM2_CONF"] = str(conf)
        os.environ["OVERT_HSM_PIN"] = "bench-pin"
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                "bench",
                "--so-pin",
                "bench-so",
                "--pin",
                "bench-pin",
            ],
            check=True,
            capture_output=True,
        )

    from securesystemslib import dsse as sslib_dsse

    from overt.attest.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, sign_envelope
    from overt.attest.provenance import BuildDefinition, Builder, Provenance, RunDetails
    from overt.attest.statement import ResourceDescriptor
    from overt.attest.verify import signature_valid, verify_envelope, verify_statement
    from overt.home import Home
    from overt.keys.builders import add_builder
    from overt.keys.registry import KeyRecord, Role
    from overt.keys.signers import HsmConfig, generate_file_key, hsm_generate, load_signer

    message = b"x" * 1024
    hsm = HsmConfig(module=module or "", token="bench", pin_env="OVERT_HSM_PIN")
    backends = [("file", generate_file_key, work / "keys")]
    if module:
        backends.append(("hsm", lambda _dir, kt: hsm_generate(hsm, kt, f"bench-{kt}"), work / "keys"))
    for storage, make, keys_dir in backends:
        for keytype in ("ed25519", "ecdsa"):
            uri, key = make(keys_dir, keytype)
            signer = load_signer(uri, key, keys_dir=keys_dir, hsm=hsm)
            sig = signer.sign_raw(message)
            assert signature_valid(key, sig, message)
            tag = f"{storage}_{keytype}"
            figures[f"{tag}_sign_per_s"] = round(rate(lambda s=signer: s.sign_raw(message), args.seconds), 1)
            figures[f"{tag}_verify_per_s"] = round(
                rate(lambda k=key, s=sig: signature_valid(k, s, message), args.seconds), 1
            )
            print(
                f"{tag}: sign {figures[f'{tag}_sign_per_s']}/s, verify {figures[f'{tag}_verify_per_s']}/s",
                flush=True,
            )
    if module:
        figures["hsm_sign_per_s"] = figures["hsm_ed25519_sign_per_s"]
    else:
        figures["hsm_sign_per_s"] = None
        figures["hsm_missing"] = "SoftHSM2 not installed (Debian package softhsm2)"

    # DSSE: a realistic provenance envelope, verified end to end, against securesystemslib's verifier.
    uri, key = generate_file_key(work / "keys", "ed25519")
    signer = load_signer(uri, key, keys_dir=work / "keys", hsm=hsm)
    prov = Provenance(
        build_definition=BuildDefinition(
            build_type="https://overt.dev/build/v1",
            external_parameters={"source": {"sha256": "ab" * 32}, "recipe": "overt.toml"},
            resolved_dependencies=tuple(
                ResourceDescriptor(name=f"dep-{i}.whl", digest={"sha256": f"{i:064x}"}) for i in range(10)
            ),
        ),
        run_details=RunDetails(builder=Builder(id="https://conveyor.example/builder?jurisdiction=CH")),
    )
    subject = (ResourceDescriptor(name="app-1.0-py3-none-any.whl", digest={"sha256": "cd" * 32}),)
    env_bytes = sign_envelope(prov.statement(subject).to_bytes(), PAYLOAD_TYPE_IN_TOTO, [signer]).to_bytes()
    figures["dsse_envelope_bytes"] = len(env_bytes)

    def ours() -> None:
        verify_statement(Envelope.from_bytes(env_bytes), [key])

    def ours_envelope_only() -> None:
        verify_envelope(Envelope.from_bytes(env_bytes), [key], 1)

    def theirs() -> None:
        sslib_dsse.Envelope.from_dict(json.loads(env_bytes)).verify([key], 1)

    ours_rate = rate(ours, args.seconds)
    envelope_rate = rate(ours_envelope_only, args.seconds)
    theirs_rate = rate(theirs, args.seconds)
    figures["dsse_verify_per_s"] = round(ours_rate, 1)
    figures["dsse_verify_us"] = round(1e6 / ours_rate, 1)
    figures["dsse_envelope_only_verify_per_s"] = round(envelope_rate, 1)
    figures["securesystemslib_dsse_verify_per_s"] = round(theirs_rate, 1)
    figures["dsse_verify_vs_securesystemslib_ratio"] = round(envelope_rate / theirs_rate, 3)
    print(
        f"dsse verify: ours {ours_rate:.0f}/s with statement parsing, {envelope_rate:.0f}/s envelope only; "
        f"securesystemslib {theirs_rate:.0f}/s (envelope only)",
        flush=True,
    )

    # Policy-checked signing, each envelope appended to a real log with a checkpoint published.
    h = Home.init(work / "home", origin="bench.overt.example/log")
    uri, key = generate_file_key(h.paths.keys, "ed25519")
    builder = KeyRecord.create(
        key, role=Role.BUILDER, jurisdiction="CH", valid_from=datetime.now(UTC), valid_until=None, uri=uri
    )
    h.registry.save(builder)
    uri, key = generate_file_key(h.paths.keys, "ed25519")
    release = KeyRecord.create(
        key, role=Role.RELEASE, jurisdiction="CH", valid_from=datetime.now(UTC), valid_until=None, uri=uri
    )
    h.registry.save(release)
    add_builder(
        h.builder_store(),
        h.signing_service(),
        release,
        builder_id="https://conveyor.example/builder?jurisdiction=CH",
        jurisdiction="CH",
    )
    service = h.signing_service()
    statement = prov.statement(subject)
    figures["sign_and_log_per_s"] = round(rate(lambda: service.sign(builder, statement), args.seconds), 1)
    print(f"sign and log: {figures['sign_and_log_per_s']}/s", flush=True)

    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, sort_keys=True))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
