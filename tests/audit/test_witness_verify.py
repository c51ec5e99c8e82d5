"""Witness cosignatures (c2sp.org/tlog-cosignature) as the auditor's anchor: k of n witnesses must have
cosigned a checkpoint covering every exported entry."""

from __future__ import annotations

import base64
import copy
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.errors import FormatError, InvalidSignatureError
from audit.signed_note import (
    COSIGNATURE_V1,
    cosign,
    cosignatures,
    parse_cosigner_vkey,
    parse_vkey,
    signature_lines,
    vkey_for,
)
from audit.verify import main, verify_bundle

from .synthetic import Export, Shard, Signer, make_log, write

SIZES = {"2025-01": 30, "2025-02": 23}
SINCE, UNTIL = "2025-01-01T00:00:00+00:00", "2025-03-01T00:00:00+00:00"


class WitnessKey:
    def __init__(self, name: str) -> None:
        self.name = name
        self.key = Ed25519PrivateKey.generate()
        self.public = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.vkey = vkey_for(name, self.public, COSIGNATURE_V1)

    def cosign(self, note: str, when: int = 1_760_000_000) -> str:
        body = note[: note.rindex("\n\n") + 1]
        return note + cosign(body, self.name, self.key.sign, self.public, when)


@pytest.fixture(scope="module")
def gateway() -> Signer:
    return Signer()


@pytest.fixture(scope="module")
def witnesses() -> list[WitnessKey]:
    return [WitnessKey(f"witness.test/w{i}") for i in range(3)]


def witnessed(log: dict[str, Shard], by: list[WitnessKey], sizes: dict[str, int] | None = None) -> dict[str, Shard]:
    """A copy of ``log`` whose newest checkpoint of each shard (or the one at ``sizes[shard]``) ``by`` cosigned."""
    result = copy.deepcopy(log)
    for name, shard in result.items():
        size = (sizes or {}).get(name, len(shard.entries))
        for witness in by:
            shard.checkpoints[size] = witness.cosign(shard.checkpoints[size])
    return result


def bundle(path: Path, log: dict[str, Shard], vkeys: list[str]) -> Path:
    return write(path, [Export(s) for s in log.values()], vkeys=vkeys, since=SINCE, until=UNTIL)


def test_cosignature_lines_follow_the_spec(witnesses: list[WitnessKey], gateway: Signer) -> None:
    note = gateway.checkpoint("gateway.test/audit/2025-01", 5, bytes(32))
    w = witnesses[0]
    cosigned = w.cosign(note, when=1679315147)
    line = cosigned[len(note):]
    assert signature_lines(line) == [line]
    (found,) = cosignatures(cosigned, [parse_cosigner_vkey(w.vkey)])
    assert (found.name, found.timestamp, found.line) == (w.name, 1679315147, line)
    # A cosigner key is not a note signer key and vice versa (type bytes 0x04 and 0x01).
    with pytest.raises(FormatError):
        parse_vkey(w.vkey)
    with pytest.raises(FormatError):
        parse_cosigner_vkey(gateway.vkey)
    prefix, encoded = line[:-1].rsplit(" ", 1)
    blob = bytearray(base64.b64decode(encoded))
    blob[-1] ^= 1  # one bit of the Ed25519 signature
    forged = note + f"{prefix} {base64.b64encode(bytes(blob)).decode()}\n"
    with pytest.raises(InvalidSignatureError):
        cosignatures(forged, [parse_cosigner_vkey(w.vkey)])
    assert cosignatures(cosigned, [parse_cosigner_vkey(witnesses[1].vkey)]) == []


def test_k_of_n_witnesses_anchor_a_bundle(tmp_path: Path, gateway: Signer, witnesses: list[WitnessKey]) -> None:
    log = witnessed(make_log(gateway, SIZES), witnesses[:2])
    path = bundle(tmp_path / "b.zip", log, [gateway.vkey, Signer().vkey])
    vkeys = [w.vkey for w in witnesses]
    report = verify_bundle(path, witnesses=vkeys, min_witnesses=2, jobs=1)
    assert report.ok, report.render()
    assert (report.anchors, report.keys_source, report.keys) == (["witnesses"], "witnesses", [gateway.vkey])
    assert [s.witnessed_size for s in report.shards] == [30, 23]
    three = verify_bundle(path, witnesses=vkeys, min_witnesses=3, jobs=1)
    assert three.verdict == "failed"
    assert {(p.code, p.shard) for p in three.problems} >= {("unwitnessed_entries", "2025-01")}
    argv = [str(path), "--jobs", "1", *(a for v in vkeys for a in ("--witness", v))]
    assert main([*argv, "--min-witnesses", "2"]) == 0
    assert main([*argv, "--min-witnesses", "3"]) == 1
    assert main([*argv, "--min-witnesses", "4"]) == 2  # more than given: a usage error


def test_entries_after_the_last_witnessed_checkpoint_are_reported(
    tmp_path: Path, gateway: Signer, witnesses: list[WitnessKey]
) -> None:
    log = witnessed(make_log(gateway, SIZES), witnesses[:1], sizes={"2025-02": 20})
    report = verify_bundle(bundle(tmp_path / "b.zip", log, [gateway.vkey]), witnesses=[witnesses[0].vkey], jobs=1)
    assert [(p.code, p.shard, p.index) for p in report.problems] == [("unwitnessed_entries", "2025-02", 20)]


def test_a_forged_bundle_has_no_cosignatures_of_your_witnesses(
    tmp_path: Path, gateway: Signer, witnesses: list[WitnessKey]
) -> None:
    forger = Signer()
    fake_witness = WitnessKey(witnesses[0].name)  # the witness's name, the forger's key
    forged = bundle(tmp_path / "f.zip", witnessed(make_log(forger, SIZES), [fake_witness]), [forger.vkey])
    report = verify_bundle(forged, witnesses=[witnesses[0].vkey], jobs=1)
    assert report.verdict == "failed"
    assert {p.code for p in report.problems} == {"unwitnessed_entries"}
    assert report.keys_source == "bundle"


def test_a_bad_cosignature_by_a_trusted_witness_is_reported(
    tmp_path: Path, gateway: Signer, witnesses: list[WitnessKey]
) -> None:
    log = witnessed(make_log(gateway, SIZES), witnesses[:1])
    note = log["2025-02"].checkpoints[23]
    body = note[: note.rindex("\n\n") + 1]
    other_body = body.replace("\n23\n", "\n24\n")
    w = witnesses[0]
    # A cosignature made over other text, pasted under this checkpoint.
    log["2025-02"].checkpoints[23] = note.split("\u2014 " + w.name)[0] + cosign(
        other_body, w.name, w.key.sign, w.public, 1_760_000_000)
    report = verify_bundle(bundle(tmp_path / "b.zip", log, [gateway.vkey]), witnesses=[w.vkey], jobs=1)
    assert ("bad_cosignature", "2025-02") in {(p.code, p.shard) for p in report.problems}
