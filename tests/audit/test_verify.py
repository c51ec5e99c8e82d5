"""The offline verifier against real bundles: a clean one verifies, and every kind of tampering is caught
and located (shard and index)."""

from __future__ import annotations

import copy
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from audit.bundle import PurgeRecord, entries_name, proofs_name
from audit.verify import Report, main, verify_bundle

from .synthetic import Export, Shard, Signer, make_log, manifest_with, rewrite, sign_every, write

SIZES = {"2024-12": 25, "2025-01": 30, "2025-02": 23, "2025-03": 17}
SINCE, UNTIL = "2024-12-01T00:00:00+00:00", "2025-04-01T00:00:00+00:00"


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


@pytest.fixture(scope="module")
def log(signer: Signer) -> dict[str, Shard]:
    return make_log(signer, SIZES)


def purge_of(shard: Shard) -> PurgeRecord:
    return PurgeRecord(shard=shard.name, purged_at="2028-01-02T03:00:00Z", checkpoint=shard.final())


def bundle_of(path: Path, log: dict[str, Shard], vkeys: list[str], **overrides: object) -> Path:
    """The standard bundle: 2024-12 purged, 2025-01..03 exported whole; ``overrides`` replace shards."""
    shards = {**log, **overrides}
    exports = [Export(shard) for name, shard in shards.items() if name != "2024-12"]  # type: ignore[arg-type]
    return write(path, exports, vkeys=vkeys, since=SINCE, until=UNTIL, purges=(purge_of(log["2024-12"]),))


@pytest.fixture
def clean(tmp_path: Path, log: dict[str, Shard], signer: Signer) -> Path:
    return bundle_of(tmp_path / "clean.zip", log, [signer.vkey])


def where(report: Report) -> set[tuple[str | None, int | None]]:
    return {(p.shard, p.index) for p in report.problems}


def codes(report: Report) -> set[str]:
    return {p.code for p in report.problems}


def edit_entries(bundle: Path, shard: str, start: int, edit: object) -> Path:
    name = entries_name(shard, start)
    lines = zipfile.ZipFile(bundle).read(name).splitlines()
    edited = edit(lines)  # type: ignore[operator]
    return rewrite(bundle, bundle.with_name("tampered.zip"), {name: b"".join(line + b"\n" for line in edited)})


def test_clean_bundle_verifies(clean: Path, signer: Signer, log: dict[str, Shard]) -> None:
    report = verify_bundle(clean, jobs=1)
    # Everything checks out, but only against keys the bundle brought itself: no anchor, no trust.
    assert report.consistent, report.render()
    assert (report.verdict, report.anchors, report.ok) == ("untrusted", [], False)
    assert report.keys_source == "bundle"
    assert [s.shard for s in report.shards] == ["2025-01", "2025-02", "2025-03"]
    assert [s.verified_size for s in report.shards] == [30, 23, 17]
    assert [s.previous for s in report.shards] == ["2024-12", "2025-01", "2025-02"]
    assert [(p.shard, p.size) for p in report.purged] == [("2024-12", 25)]
    assert report.entries == 30 + 23 + 17
    pinned = verify_bundle(clean, keys=[signer.vkey], trusted_checkpoints=[log["2025-02"].checkpoints[20]], jobs=1)
    assert pinned.ok, pinned.render()
    assert pinned.keys_source == "pinned"
    assert (pinned.verdict, pinned.anchors) == ("trusted", ["pinned_key", "trusted_checkpoint"])


def test_parallel_workers_give_the_same_report(clean: Path, log: dict[str, Shard], signer: Signer) -> None:
    tampered = edit_entries(clean, "2025-02", 8, lambda lines: [lines[0].replace(b"sub_", b"sub-"), *lines[1:]])
    serial, parallel = verify_bundle(tampered, jobs=1), verify_bundle(tampered, jobs=2)
    assert parallel.problems == serial.problems
    assert parallel.shards == serial.shards
    assert verify_bundle(clean, keys=[signer.vkey], jobs=2).ok


def test_one_changed_byte_is_located(clean: Path) -> None:
    # Entry 13 of 2025-02 is line 5 of the file starting at 8; the change keeps it valid JSON.
    tampered = edit_entries(clean, "2025-02", 8, lambda lines: [
        line.replace(b"sub_000013", b"sub_000019") for line in lines])
    report = verify_bundle(tampered, jobs=1)
    assert not report.ok
    assert codes(report) == {"entry_altered"}
    assert where(report) == {("2025-02", 13)}


def test_deleted_entry_is_located(clean: Path) -> None:
    tampered = edit_entries(clean, "2025-02", 8, lambda lines: lines[:5] + lines[6:])
    report = verify_bundle(tampered, jobs=1)
    assert not report.ok
    assert ("2025-02", 13) in where(report)
    assert {"entry_misplaced", "entry_count"} <= codes(report)


def test_reordered_entries_are_located(clean: Path) -> None:
    tampered = edit_entries(clean, "2025-02", 8, lambda lines: [*lines[:4], lines[5], lines[4], *lines[6:]])
    report = verify_bundle(tampered, jobs=1)
    assert {("2025-02", 12), ("2025-02", 13)} <= where(report)
    assert {"entry_misplaced", "entry_altered"} <= codes(report)


def truncated(log: dict[str, Shard], name: str, size: int, attacker: Signer) -> Shard:
    shard = copy.deepcopy(log[name])
    shard.entries = shard.entries[:size]
    sign_every(attacker, shard, 10)
    return shard


def test_truncated_and_resigned_last_shard_fails_with_pinned_key(
    tmp_path: Path, log: dict[str, Shard], signer: Signer
) -> None:
    attacker = Signer()
    bundle = bundle_of(tmp_path / "b.zip", log, [signer.vkey, attacker.vkey],
                       **{"2025-03": truncated(log, "2025-03", 12, attacker)})
    forged = verify_bundle(bundle, jobs=1)  # the bundle's own keys vouch for the forgery ...
    assert forged.consistent, forged.render()
    assert forged.verdict == "untrusted"
    report = verify_bundle(bundle, keys=[signer.vkey], jobs=1)  # ... the auditor's pinned key does not
    assert {"unverified_checkpoint", "unsigned_entries"} <= codes(report)
    assert ("2025-03", 0) in where(report)


def test_truncated_last_shard_fails_against_a_trusted_checkpoint(
    tmp_path: Path, log: dict[str, Shard], signer: Signer
) -> None:
    attacker = Signer()
    bundle = bundle_of(tmp_path / "b.zip", log, [signer.vkey, attacker.vkey],
                       **{"2025-03": truncated(log, "2025-03", 12, attacker)})
    report = verify_bundle(bundle, trusted_checkpoints=[log["2025-03"].final()], jobs=1)
    assert [(p.code, p.shard, p.index) for p in report.missing] == [("missing_entries", "2025-03", 12)]


def test_truncated_middle_shard_is_caught_by_the_month_chain(
    tmp_path: Path, log: dict[str, Shard], signer: Signer
) -> None:
    attacker = Signer()
    bundle = bundle_of(tmp_path / "b.zip", log, [signer.vkey, attacker.vkey],
                       **{"2025-02": truncated(log, "2025-02", 15, attacker)})
    report = verify_bundle(bundle, jobs=1)
    assert [(p.code, p.shard, p.index) for p in report.missing] == [("missing_entries", "2025-02", 15)]


def test_replaced_shard_is_caught(tmp_path: Path, log: dict[str, Shard], signer: Signer) -> None:
    attacker = Signer()
    forged = copy.deepcopy(log["2025-02"])
    forged.entries = [e.replace(b"cli_app", b"cli_evil") for e in forged.entries]
    sign_every(attacker, forged, 10)
    bundle = bundle_of(tmp_path / "b.zip", log, [signer.vkey, attacker.vkey], **{"2025-02": forged})
    report = verify_bundle(bundle, jobs=1)
    assert ("2025-02", 23) in where(report)
    assert "conflicting_checkpoints" in codes(report)
    pinned = verify_bundle(bundle, keys=[signer.vkey], jobs=1)
    assert ("2025-02", 0) in where(pinned)
    assert {"unverified_checkpoint", "root_mismatch"} <= codes(pinned)


def test_month_removed_without_purge_record_is_missing(clean: Path) -> None:
    with zipfile.ZipFile(clean) as zf:
        gone: dict[str, bytes | None] = {n: None for n in zf.namelist() if n.startswith("shards/2025-02/")}
    tampered = rewrite(clean, clean.with_name("t.zip"), {**gone, "manifest.json": manifest_with(clean, **{
        "2025_02": {}})})
    report = verify_bundle(tampered, jobs=1)
    assert [(p.code, p.shard, p.index) for p in report.problems] == [("missing_shard", "2025-02", 0)]


def test_purged_month_with_a_forged_purge_record_is_not_accepted(
    tmp_path: Path, log: dict[str, Shard], signer: Signer
) -> None:
    attacker = Signer()
    fake = copy.deepcopy(log["2024-12"])
    fake.entries = fake.entries[:5]
    sign_every(attacker, fake, 10)
    exports = [Export(log[n]) for n in ("2025-01", "2025-02", "2025-03")]
    bundle = write(tmp_path / "b.zip", exports, vkeys=[signer.vkey, attacker.vkey], since=SINCE, until=UNTIL,
                   purges=(purge_of(fake),))
    report = verify_bundle(bundle, jobs=1)
    assert ("2025-01", 0) in where(report)
    assert "broken_link" in codes(report)
    assert verify_bundle(bundle, keys=[signer.vkey], jobs=1).missing[0].shard == "2024-12"


def test_trailing_month_without_a_shard_is_missing(tmp_path: Path, log: dict[str, Shard], signer: Signer) -> None:
    exports = [Export(log[n]) for n in ("2025-01", "2025-02", "2025-03")]
    bundle = write(tmp_path / "b.zip", exports, vkeys=[signer.vkey], since=SINCE,
                   until="2025-05-01T00:00:00+00:00", purges=(purge_of(log["2024-12"]),))
    report = verify_bundle(bundle, jobs=1)
    assert [(p.code, p.shard) for p in report.problems] == [("missing_shard", "2025-04")]


def test_months_before_the_log_began_are_not_missing(tmp_path: Path, log: dict[str, Shard], signer: Signer) -> None:
    bundle = write(tmp_path / "b.zip", [Export(log["2024-12"]), Export(log["2025-01"])], vkeys=[signer.vkey],
                   since="2024-06-01T00:00:00+00:00", until="2025-02-01T00:00:00+00:00")
    report = verify_bundle(bundle, keys=[signer.vkey], jobs=1)
    assert report.ok, report.render()
    assert [s.starts_log for s in report.shards] == [True, False]
    assert [(m.month, m.status) for m in report.months] == [
        *((f"2024-{m:02d}", "before_log") for m in range(6, 12)), ("2024-12", "exported"), ("2025-01", "exported")]
    assert "months 2024-06..2024-11: before the log began" in report.render()


def test_a_second_first_shard_is_a_broken_chain(tmp_path: Path, log: dict[str, Shard], signer: Signer) -> None:
    restarted = make_log(signer, {"2025-01": 30})["2025-01"]  # entry 0 commits to nothing
    bundle = write(tmp_path / "b.zip", [Export(log["2024-12"]), Export(restarted)], vkeys=[signer.vkey],
                   since="2024-12-01T00:00:00+00:00", until="2025-02-01T00:00:00+00:00")
    report = verify_bundle(bundle, jobs=1)
    assert [(p.code, p.shard, p.index) for p in report.problems] == [("broken_link", "2025-01", 0)]


def test_range_starting_mid_shard_verifies_with_frontier_and_proofs(
    tmp_path: Path, log: dict[str, Shard], signer: Signer
) -> None:
    shard = log["2025-01"]
    bundle = write(tmp_path / "b.zip", [Export(shard, first_index=12, end=27, proofs_from=(10,))],
                   vkeys=[signer.vkey], since="2025-01-10T00:00:00+00:00", until="2025-01-20T00:00:00+00:00")
    report = verify_bundle(bundle, keys=[signer.vkey], trusted_checkpoints=[shard.checkpoints[10]], jobs=1)
    assert report.ok, report.render()
    assert report.shards[0].verified_size == 27
    # Ending exactly at a checkpoint, with the next one linked by a proof, is just as complete.
    at_checkpoint = write(tmp_path / "c.zip", [Export(shard, first_index=12, end=20)], vkeys=[signer.vkey],
                          since="2025-01-10T00:00:00+00:00", until="2025-01-20T00:00:00+00:00")
    assert verify_bundle(at_checkpoint, keys=[signer.vkey], jobs=1).ok

    forked = make_log(signer, {"2025-01": 30}, checkpoint_every=10)["2025-01"]
    forked.entries[3] = forked.entries[3].replace(b"sub_", b"sub-")
    sign_every(signer, forked, 10)
    split_view = verify_bundle(bundle, trusted_checkpoints=[forked.checkpoints[10]], jobs=1)
    assert [(p.code, p.shard, p.index) for p in split_view.problems] == [("inconsistent", "2025-01", 10)]


def test_tampered_frontier_is_a_root_mismatch(tmp_path: Path, log: dict[str, Shard], signer: Signer) -> None:
    bundle = write(tmp_path / "b.zip", [Export(log["2025-01"], first_index=12, end=27)], vkeys=[signer.vkey],
                   since="2025-01-10T00:00:00+00:00", until="2025-01-20T00:00:00+00:00")
    proofs = json.loads(zipfile.ZipFile(bundle).read(proofs_name("2025-01")))
    proofs["frontier"].reverse()
    tampered = rewrite(bundle, tmp_path / "t.zip", {proofs_name("2025-01"): json.dumps(proofs).encode()})
    report = verify_bundle(tampered, jobs=1)
    assert [(p.code, p.shard, p.index) for p in report.problems] == [("root_mismatch", "2025-01", 12)]


def test_strict_json_parses_every_entry(tmp_path: Path, signer: Signer) -> None:
    shard = make_log(signer, {"2025-01": 12})["2025-01"]
    # The log itself signed a line that is not JSON but has the canonical seq/shard members in place.
    shard.entries[3] = b'{"action":[,"seq":3,"shard":"2025-01","ts":"2025-01-02T10:00:00.000000Z"}'
    sign_every(signer, shard, 10)
    bundle = write(tmp_path / "b.zip", [Export(shard)], vkeys=[signer.vkey], since="2025-01-01T00:00:00+00:00",
                   until="2025-01-31T00:00:00+00:00")
    assert verify_bundle(bundle, keys=[signer.vkey], jobs=1).ok  # the documented limit of the fast path
    strict = verify_bundle(bundle, jobs=1, strict_json=True)
    assert [(p.code, p.shard, p.index) for p in strict.problems] == [("entry_malformed", "2025-01", 3)]


def test_writer_streams_to_an_unseekable_file(tmp_path: Path, log: dict[str, Shard], signer: Signer) -> None:
    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: object) -> int:
            chunk = bytes(b)  # type: ignore[call-overload]
            self.data += chunk
            return len(chunk)

    pipe = Pipe()
    write(pipe, [Export(log["2024-12"])], vkeys=[signer.vkey],  # type: ignore[arg-type]
          since="2024-12-01T00:00:00+00:00", until="2025-01-01T00:00:00+00:00")
    path = tmp_path / "streamed.zip"
    path.write_bytes(bytes(pipe.data))
    assert verify_bundle(path, keys=[signer.vkey], jobs=1).ok


def test_cli_exit_codes_and_output(
    clean: Path, tmp_path: Path, log: dict[str, Shard], signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    trusted = tmp_path / "trusted.note"
    trusted.write_text(log["2025-03"].checkpoints[10], encoding="utf-8")
    assert main([str(clean), "--key", signer.vkey, "--trusted-checkpoint", str(trusted), "--jobs", "1"]) == 0
    assert "OK:" in capsys.readouterr().out

    assert main([str(clean), "--key", signer.vkey, "--json", "--jobs", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["ok"], report["verdict"], report["anchors"]) == (True, "trusted", ["pinned_key"])
    assert report["purged"][0]["shard"] == "2024-12"

    # Without an anchor: self-consistent, untrusted, exit 3 unless the auditor accepts that explicitly.
    assert main([str(clean), "--json", "--jobs", "1"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert (report["ok"], report["consistent"], report["verdict"]) == (False, True, "untrusted")
    assert main([str(clean), "--allow-untrusted", "--jobs", "1"]) == 0
    assert "SELF-CONSISTENT BUT UNTRUSTED" in capsys.readouterr().out

    tampered = edit_entries(clean, "2025-02", 8, lambda lines: [
        line.replace(b"sub_000013", b"sub_000019") for line in lines])
    assert main([str(tampered), "--allow-untrusted", "--jobs", "1"]) == 1
    out = capsys.readouterr().out
    assert "[2025-02 #13]" in out
    assert "FAILED" in out

    assert main([str(clean), "--key", Signer().vkey, "--jobs", "1"]) == 1
    capsys.readouterr()
    not_a_bundle = tmp_path / "x.zip"
    not_a_bundle.write_bytes(b"not a zip")
    assert main([str(not_a_bundle)]) == 2
    assert "error:" in capsys.readouterr().err


def _manifest(bundle: Path, **changes: Any) -> bytes:
    manifest = json.loads(zipfile.ZipFile(bundle).read("manifest.json"))
    return json.dumps({**manifest, **changes}).encode()


@pytest.mark.parametrize("change", [
    # A range the exporter never writes would excuse every month as outside it.
    {"since": "2027-06-01T00:00:00Z", "until": "2024-01-01T00:00:00Z"},
    {"since": "0001-01-01T00:00:00+01:00"},  # year 0 once in UTC
])
def test_a_manifest_range_that_cannot_be_is_unreadable(
    clean: Path, signer: Signer, change: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    forged = rewrite(clean, clean.with_name("f.zip"), {"manifest.json": _manifest(clean, **change)})
    assert main([str(forged), "--key", signer.vkey, "--jobs", "1"]) == 2
    assert "error:" in capsys.readouterr().err


def test_a_manifest_from_year_999_still_names_every_month_it_covers(clean: Path, signer: Signer) -> None:
    # Month names keep four digits: "0999-01" sorts before "2024-12"; "999-01" sorted after it and hid them.
    wide = rewrite(clean, clean.with_name("w.zip"), {"manifest.json": _manifest(clean, since="0999-01-01T00:00:00Z")})
    report = verify_bundle(wide, keys=[signer.vkey], jobs=1)
    assert report.ok, report.render()
    stripped = {n: None for n in zipfile.ZipFile(clean).namelist() if n.startswith("shards/2025-02/")}
    hidden = rewrite(clean, clean.with_name("h.zip"), {**stripped, "manifest.json": manifest_with(
        wide, **{"2025_02": {}})})
    assert ("missing_shard", "2025-02", 0) in {(p.code, p.shard, p.index) for p in verify_bundle(
        hidden, keys=[signer.vkey], jobs=1).problems}


@pytest.mark.parametrize("manifest", [
    b"[" * 100_000 + b"]" * 100_000,  # deeper than the parser recurses
    None,  # a shard that claims a billion checkpoints
])
def test_a_hostile_manifest_is_refused_quickly(
    clean: Path, signer: Signer, manifest: bytes | None, capsys: pytest.CaptureFixture[str]
) -> None:
    if manifest is None:
        manifest = manifest_with(clean, **{"2025_02": {"checkpoints": 10**9}})
    forged = rewrite(clean, clean.with_name("f.zip"), {"manifest.json": manifest})
    assert main([str(forged), "--key", signer.vkey, "--jobs", "1"]) == 2
    assert "error:" in capsys.readouterr().err
