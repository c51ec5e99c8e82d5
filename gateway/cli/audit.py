"""``consent-gateway audit …`` and ``retention purge``: thin wrappers around the audit domain."""

from __future__ import annotations

import os
import shutil
import sys
import time
from datetime import datetime

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.exc import OperationalError

from audit import retention, sequencer
from audit.verify import main as verify_main
from gateway.auditing.export import ExportRange, InvalidRange, export
from gateway.auditing.runner import drain, tick, verifier_keys
from gateway.auditing.trail import OPERATOR, AuditJournal, Party
from gateway.cli.output import emit, json_option
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.core.times import parse_time

# Retention runs as the system's own housekeeping, whoever starts it.
RETENTION = Party("system", "retention")


def _when(value: str | None) -> datetime | None:
    try:
        return None if value is None else parse_time(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@click.group("audit", cls=AppGroup)
def audit_group() -> None:
    """The tamper-evident audit log."""


@audit_group.command("export")
@click.option("--since", help="RFC 3339 (default: 31 days before --until)")
@click.option("--until", help="RFC 3339, exclusive (default: now)")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, writable=True),
              help="where to write the bundle (.zip)")
@json_option
def audit_export(since: str | None, until: str | None, output: str, as_json: bool) -> None:
    """Write a signed export bundle (zip) for a time range; the export is itself audited."""
    now = utcnow()
    try:
        span = ExportRange.resolve(_when(since), _when(until), now)
    except InvalidRange as exc:
        raise click.UsageError(str(exc)) from exc
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        # Opened first: an export is audited, and one that cannot be written must not be recorded as made.
        handle = open(output, "wb")  # noqa: SIM115 -- closed below, and removed if the export fails
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror}") from exc
    try:
        with handle:
            with db.unit_of_work() as session:
                spool = export(app, session, span, now, party=OPERATOR, output="file")
            with spool:
                shutil.copyfileobj(spool, handle, 1024 * 1024)
    except BaseException:
        os.unlink(output)
        raise
    times = span.as_detail()
    emit(as_json, {"output": output, **times}, f"wrote {output} ({times['since']} .. {times['until']})")


@audit_group.command("verify", with_appcontext=False)
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.option("--key", "keys", multiple=True, metavar="VKEY",
              help="the log's verifier key, as `consent-gateway audit keys` or GET /v1/audit/keys print it "
                   "(repeatable); only these keys' signatures count")
@click.option("--trusted-checkpoint", "checkpoints", multiple=True, type=click.Path(exists=True, dir_okay=False),
              metavar="FILE", help="a signed checkpoint kept from an earlier audit (repeatable); the bundle must be "
                                   "consistent with it, and without --key the bundle's keys that signed it are "
                                   "pinned")
@click.option("--witness", "witnesses", multiple=True, metavar="VKEY",
              help="a witness's cosigning key (repeatable); every exported entry must lie under a checkpoint that "
                   "--min-witnesses of them cosigned")
@click.option("--min-witnesses", type=click.IntRange(1, 100), default=1, show_default=True,
              help="how many of the --witness keys must have cosigned a checkpoint")
@click.option("--allow-untrusted", is_flag=True,
              help="exit 0 for a self-consistent bundle that no pinned key or trusted checkpoint vouches for "
                   "(the verdict still says untrusted)")
@click.option("--save-checkpoints", "save_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="once the bundle is trusted, write the newest checkpoint of each of its months to "
                   "DIR/YYYY-MM.note: what to pass with --trusted-checkpoint next time")
@click.option("--jobs", type=click.IntRange(1, 256), default=None, help="worker processes (default: all CPUs)")
@click.option("--strict-json", is_flag=True, help="parse every entry as JSON (slower)")
@json_option
def audit_verify(*, bundle: str, keys: tuple[str, ...], checkpoints: tuple[str, ...], witnesses: tuple[str, ...],
                 min_witnesses: int, allow_untrusted: bool, save_dir: str | None, jobs: int | None,
                 strict_json: bool, as_json: bool) -> None:
    """Verify an export bundle offline (needs no database): signatures, roots, proofs, gaps, and trust.

    Trusted only through an anchor from outside the bundle: --key, --trusted-checkpoint, --witness. Exit status
    0 verified and trusted, 1 a check failed, 2 unreadable input, 3 self-consistent but untrusted. The
    same check as `python -m audit.verify`, which needs only the standard library and cryptography.
    """
    argv = [bundle, *(a for c in checkpoints for a in ("--trusted-checkpoint", c)),
            *(a for k in keys for a in ("--key", k)), *(a for w in witnesses for a in ("--witness", w))]
    argv += ["--min-witnesses", str(min_witnesses)] if witnesses else []
    argv += [*(["--allow-untrusted"] if allow_untrusted else []),
             *(["--save-checkpoints", save_dir] if save_dir else []), *(["--jobs", str(jobs)] if jobs else []),
             *(["--strict-json"] if strict_json else []), *(["--json"] if as_json else [])]
    sys.exit(verify_main(argv))


@audit_group.command("keys")
@json_option
def audit_keys(as_json: bool) -> None:
    """Print the log's signed-note verifier keys (active and retired): what an auditor pins with --key."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with db.unit_of_work() as session:
        vkeys = verifier_keys(session, app.config["ISSUER"])
    emit(as_json, {"vkeys": vkeys}, "\n".join(vkeys) or "no keys (run `consent-gateway init`)")


@audit_group.command("sequence")
@json_option
def audit_sequence(as_json: bool) -> None:
    """Integrate queued entries, close ended months and sign due checkpoints now."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    integrated = drain(app)
    tick(app)
    emit(as_json, {"integrated": integrated}, f"integrated {integrated} entries")


@audit_group.command("partitions")
@click.option("--months", default=2, show_default=True, type=click.IntRange(0, 24),
              help="also prepare this many months after the current one")
@json_option
def audit_partitions(months: int, as_json: bool) -> None:
    """Create the monthly PostgreSQL partitions of the log ahead of time (run as the owner role)."""
    with db.unit_of_work() as session:
        created = sequencer.prepare_partitions(session, utcnow(), months)
    emit(as_json, {"created": created}, "created " + (", ".join(created) or "nothing (all present)"))


@click.group("retention", cls=AppGroup)
def retention_group() -> None:
    """Retention of the audit log (default three years, never below six months)."""


@retention_group.command("purge")
@click.option("--dry-run", is_flag=True, help="only say what would be purged")
@json_option
def retention_purge(dry_run: bool, as_json: bool) -> None:
    """Purge shards whose month ended more than the retention period ago."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    days = int(app.config["AUDIT_RETENTION_DAYS"])
    now = utcnow()
    tick(app, now)
    try:
        with db.unit_of_work() as session:
            plans = retention.plan(session, now, days)
            if not dry_run and plans:
                retention.purge(session, plans, now, days)
                for item in plans:
                    AuditJournal(session, now).record(
                        "retention.purged", RETENTION,
                        detail={"shard": item.shard, "entries": item.entry_count, "retention_days": days,
                                "final_checkpoint": item.final_checkpoint})
    except retention.RetentionTooShort as exc:
        raise click.UsageError(str(exc)) from exc
    removed, deferred = (0, None) if dry_run else _sweep()
    shards = [{"shard": p.shard, "entries": p.entry_count} for p in plans]
    emit(as_json, {"dry_run": dry_run, "retention_days": days, "shards": shards, "rows_removed": removed,
                   "removal_deferred": deferred},
         ("would purge " if dry_run else "purged ") + (", ".join(p.shard for p in plans) or "nothing")
         + (f" (removing the rows was deferred: {deferred})" if deferred else ""))


SQLITE_SWEEP_PAUSE = 0.12


def _sweep() -> tuple[int, str | None]:
    """Remove the rows of purged shards, one short transaction at a time (this run's and any left over)."""
    removed = 0
    while True:
        try:
            with db.unit_of_work() as session:
                done = retention.sweep(session)
        except OperationalError as exc:
            # PostgreSQL's lock timeout: a long reader holds the log; the purge itself is recorded and
            # the next run removes the partition.
            return removed, str(exc.orig).strip()
        if done == 0:
            return removed, None
        removed += done
        if db.engine.dialect.name == "sqlite":
            # SQLite has no queue for its write lock: waiting writers poll with back-off (up to 100 ms
            # apart) and would keep missing the moment between two pieces. A pause longer than that
            # lets them in, so appends go on at a steady pace while a big month is removed.
            time.sleep(SQLITE_SWEEP_PAUSE)
