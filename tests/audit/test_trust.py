"""Trust comes from outside the bundle: a pinned key, or a checkpoint the auditor kept from an earlier audit.

A bundle carries its own verifier keys, so a forger who makes up a whole log (new key, new entries, new
checkpoints) produces a bundle that is perfectly self-consistent. These tests show what the verifier makes
of that, and of honest bundles whose range runs before the log began or past the time they were generated.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from audit.verify import Report, main, verify_bundle

from .synthetic import Export, Shard, Signer, make_log, sign_every, write

SIZES = {"2025-01": 30, "2025-02": 23, "2025-03": 17}
SINCE, UNTIL = "2025-01-01T00:00:00+00:00", "2025-04-01T00:00:00+00:00"


@pytest.fixture(scope="module")
def gateway() -> Signer:
    return Signer()


@pytest.fixture(scope="module")
def log(gateway: Signer) -> dict[str, Shard]:
    return make_log(gateway, SIZES)


def bundle_of(path: Path, log: dict[str, Shard], vkeys: list[str], *, since: str = SINCE, until: str = UNTIL,
              **options: str) -> Path:
    return write(path, [Export(shard) for shard in log.values()], vkeys=vkeys, since=since, until=until,
                 **options)  # type: ignore[arg-type]


def codes(report: Report) -> set[str]:
    return {p.code for p in report.problems}


def kept(tmp_path: Path, note: str) -> Path:
    path = tmp_path / "kept.note"
    path.write_text(note, encoding="utf-8")
    return path


def test_a_forged_self_consistent_bundle_passes_only_when_untrusted_is_allowed(
    tmp_path: Path, gateway: Signer, log: dict[str, Shard]
) -> None:
    forger = Signer()  # same key name as the gateway's; only the key itself differs
    forged = bundle_of(tmp_path / "forged.zip", make_log(forger, SIZES), [forger.vkey])

    alone = verify_bundle(forged, jobs=1)
    assert alone.consistent, alone.render()
    assert (alone.verdict, alone.anchors, alone.keys_source) == ("untrusted", [], "bundle")
    assert main([str(forged), "--jobs", "1"]) == 3
    assert main([str(forged), "--jobs", "1", "--allow-untrusted"]) == 0

    # The key the real gateway publishes: not one of the forged signatures counts.
    pinned = verify_bundle(forged, keys=[gateway.vkey], jobs=1)
    assert pinned.verdict == "failed"
    assert {"unverified_checkpoint", "unsigned_entries"} <= codes(pinned)
    assert main([str(forged), "--key", gateway.vkey, "--allow-untrusted", "--jobs", "1"]) == 1

    # A checkpoint the auditor kept from last time: no key of the bundle signed it.
    note = log["2025-02"].checkpoints[20]
    held = verify_bundle(forged, trusted_checkpoints=[note], jobs=1)
    assert held.verdict == "failed"
    assert ("unverified_checkpoint", None) in {(p.code, p.shard) for p in held.problems}
    assert "no key in the bundle signed the checkpoints you kept" in held.render()
    assert main([str(forged), "--trusted-checkpoint", str(kept(tmp_path, note)), "--allow-untrusted",
                 "--jobs", "1"]) == 1

    # Shipping the real key beside the forger's does not help: only the key that signed the kept checkpoint
    # counts, and it signed none of the forged checkpoints.
    both = bundle_of(tmp_path / "both.zip", make_log(forger, SIZES), [gateway.vkey, forger.vkey])
    report = verify_bundle(both, trusted_checkpoints=[note], jobs=1)
    assert (report.keys_source, report.keys) == ("trusted_checkpoint", [gateway.vkey])
    assert report.verdict == "failed"
    assert {"unverified_checkpoint", "unsigned_entries"} <= codes(report)


def test_a_kept_checkpoint_alone_anchors_an_honest_bundle(
    tmp_path: Path, gateway: Signer, log: dict[str, Shard]
) -> None:
    stranger = Signer()
    bundle = bundle_of(tmp_path / "b.zip", log, [gateway.vkey, stranger.vkey])
    report = verify_bundle(bundle, trusted_checkpoints=[log["2025-02"].checkpoints[20]], jobs=1)
    assert report.ok, report.render()
    assert (report.anchors, report.keys_source, report.keys) == (
        ["trusted_checkpoint"], "trusted_checkpoint", [gateway.vkey])
    assert "trust: checked against the checkpoint you kept" in report.render()


def test_the_final_checkpoint_of_an_earlier_month_anchors_through_the_month_chain(
    tmp_path: Path, gateway: Signer, log: dict[str, Shard]
) -> None:
    later = {name: log[name] for name in ("2025-02", "2025-03")}
    bundle = bundle_of(tmp_path / "b.zip", later, [gateway.vkey], since="2025-02-01T00:00:00+00:00")
    report = verify_bundle(bundle, trusted_checkpoints=[log["2025-01"].final()], jobs=1)
    assert report.ok, report.render()
    assert report.anchors == ["trusted_checkpoint"]

    # An earlier checkpoint of that month cannot be linked from a bundle that starts after the month.
    early = verify_bundle(bundle, keys=[gateway.vkey], trusted_checkpoints=[log["2025-01"].checkpoints[10]], jobs=1)
    assert [(p.code, p.shard) for p in early.problems] == [("trusted_checkpoint_unchecked", "2025-01")]

    # A kept final checkpoint that the chain contradicts: the log showed the auditor another history.
    other = make_log(gateway, {"2025-01": 34})["2025-01"]
    split = verify_bundle(bundle, trusted_checkpoints=[other.final()], jobs=1)
    assert [(p.code, p.shard) for p in split.problems] == [("inconsistent", "2025-01")]


def test_a_rotated_key_must_be_pinned_beside_the_one_that_signed_the_kept_checkpoint(
    tmp_path: Path, gateway: Signer, log: dict[str, Shard]
) -> None:
    rotated = Signer()
    march = copy.deepcopy(log["2025-03"])
    sign_every(rotated, march, 10)
    bundle = bundle_of(tmp_path / "b.zip", {**log, "2025-03": march}, [gateway.vkey, rotated.vkey])
    note = log["2025-01"].checkpoints[10]
    report = verify_bundle(bundle, trusted_checkpoints=[note], jobs=1)
    assert report.verdict == "failed"
    assert {p.shard for p in report.problems if p.code == "unverified_checkpoint"} == {"2025-03"}
    pinned = verify_bundle(bundle, keys=[gateway.vkey, rotated.vkey], trusted_checkpoints=[note], jobs=1)
    assert pinned.ok, pinned.render()
    assert pinned.anchors == ["pinned_key", "trusted_checkpoint"]


def test_a_range_from_before_the_log_into_the_future_verifies(
    tmp_path: Path, gateway: Signer, log: dict[str, Shard]
) -> None:
    bundle = bundle_of(tmp_path / "b.zip", log, [gateway.vkey], since="2000-01-01T00:00:00+00:00",
                       until="2100-01-01T00:00:00+00:00", generated_at="2025-03-20T12:00:00+00:00")
    report = verify_bundle(bundle, keys=[gateway.vkey], jobs=1)
    assert report.ok, report.render()
    statuses = {m.month: m.status for m in report.months}
    assert len(statuses) == 100 * 12
    assert {statuses[m] for m in statuses if m < "2025-01"} == {"before_log"}
    assert [statuses[m] for m in ("2025-01", "2025-02", "2025-03")] == ["exported"] * 3
    assert {statuses[m] for m in statuses if m > "2025-03"} == {"after_generation"}
    text = report.render()
    assert "months 2000-01..2024-12: before the log began" in text
    assert "months 2025-04..2099-12: after the bundle was generated" in text


def test_a_range_to_the_end_of_the_month_the_bundle_was_generated_in_verifies(
    tmp_path: Path, gateway: Signer, log: dict[str, Shard]
) -> None:
    for until in ("2025-03-31T00:00:00+00:00", "2025-04-01T00:00:00+00:00"):
        bundle = bundle_of(tmp_path / "b.zip", log, [gateway.vkey], until=until,
                           generated_at="2025-03-20T12:00:00+00:00")
        report = verify_bundle(bundle, keys=[gateway.vkey], jobs=1)
        assert report.ok, report.render()


def test_a_month_that_had_begun_when_the_bundle_was_generated_must_be_there(
    tmp_path: Path, gateway: Signer, log: dict[str, Shard]
) -> None:
    without_march = {name: log[name] for name in ("2025-01", "2025-02")}
    bundle = bundle_of(tmp_path / "b.zip", without_march, [gateway.vkey], until="2100-01-01T00:00:00+00:00",
                       generated_at="2025-03-20T12:00:00+00:00")
    report = verify_bundle(bundle, keys=[gateway.vkey], jobs=1)
    assert [(p.code, p.shard) for p in report.problems] == [("missing_shard", "2025-03")]


def test_save_checkpoints_keeps_what_a_trusted_bundle_verified(
    tmp_path: Path, gateway: Signer, log: dict[str, Shard]
) -> None:
    bundle = bundle_of(tmp_path / "b.zip", log, [gateway.vkey])
    kept_dir = tmp_path / "kept"
    assert main([str(bundle), "--save-checkpoints", str(kept_dir), "--jobs", "1", "--allow-untrusted"]) == 0
    assert not kept_dir.exists(), "an untrusted bundle must not become the next audit's anchor"
    assert main([str(bundle), "--key", gateway.vkey, "--save-checkpoints", str(kept_dir), "--jobs", "1"]) == 0
    assert {p.name: p.read_text(encoding="utf-8") for p in kept_dir.iterdir()} == {
        f"{name}.note": shard.final() for name, shard in log.items()}
    # A smaller checkpoint never replaces a larger one kept before.
    early = bundle_of(tmp_path / "early.zip", {"2025-01": log["2025-01"]}, [gateway.vkey],
                      until="2025-02-01T00:00:00+00:00")
    (kept_dir / "2025-01.note").write_text(log["2025-01"].final(), encoding="utf-8")
    forked = make_log(gateway, {"2025-01": 12})["2025-01"]
    smaller = bundle_of(tmp_path / "small.zip", {"2025-01": forked}, [gateway.vkey],
                        until="2025-02-01T00:00:00+00:00")
    assert main([str(smaller), "--key", gateway.vkey, "--save-checkpoints", str(kept_dir), "--jobs", "1"]) == 0
    assert (kept_dir / "2025-01.note").read_text(encoding="utf-8") == log["2025-01"].final()
    assert main([str(early), "--key", gateway.vkey, "--trusted-checkpoint", str(kept_dir / "2025-01.note"),
                 "--jobs", "1"]) == 0
