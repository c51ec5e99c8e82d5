"""Offline verifier of audit export bundles (format: docs/AUDIT_BUNDLE.md).

    python -m audit.verify BUNDLE [--key VKEY ...] [--trusted-checkpoint FILE ...]
                                  [--witness VKEY ... [--min-witnesses K]] [--allow-untrusted]
                                  [--save-checkpoints DIR] [--json] [--jobs N] [--strict-json]

Needs only the standard library and ``cryptography`` (through ``audit.signed_note``), so an auditor runs it
without the gateway. Exit status: 0 when everything verifies against an anchor the auditor brought, 1 when
something does not verify, 2 when the bundle (or a key or checkpoint file) cannot be read at all, 3 when the
bundle is self-consistent but nothing outside it vouches for it (0 with ``--allow-untrusted``).

Trust. A bundle carries its own verifier keys, so on its own it proves nothing: a forger can sign a
fabricated log with a key of their own and ship that key. The verdict is "trusted" only when an anchor
from outside the bundle holds (see ``_trust``): a pinned key (``--key``), a checkpoint the auditor kept
from an earlier audit (``--trusted-checkpoint``) that the bundle is consistent with, or cosignatures of
witnesses the auditor trusts (``--witness``, ``--min-witnesses``) on the checkpoints covering the entries.

What is checked: every checkpoint signature; every entry re-hashed and every root recomputed and compared
with each signed checkpoint at that size; consistency proofs; the month chain (each shard's first entry
names the previous shard's final checkpoint); consistency with checkpoints the auditor already trusts; and
which months of the exported range are purged by policy and which are missing.

Speed. Entries files are independent compact ranges, so they are hashed in parallel worker processes
(``--jobs``, default: all CPUs); the main process only merges O(log n) hashes per file. Within a file the
work is done in C-level bulk operations: one ``replace``/``split`` yields every line already prefixed with
the RFC 9162 leaf byte, and ``map`` hashes them without a Python-level loop.

Soundness of the per-entry checks. The roots authenticate every byte of every entry; the checks below are
about what the log *signed* (an entry at the wrong position, a line that is not JSON). Parsing 10^6 JSON
lines costs more than hashing them, so by default each entries file is checked with one regular-expression
pass: every line must contain, in order, ``,"seq":<its index>,"shard":"<its shard>"``. JCS sorts members
and no member name falls between ``seq`` and ``shard``, so an entry the gateway wrote has its top-level
``seq`` and ``shard`` exactly there; a line that does not fit is re-checked with ``json.loads`` and
reported precisely. What the fast path does not establish is that every *other* byte of the line is valid
JSON (the first and last line of every file are fully parsed) or that a matching ``seq`` is not one nested
in an object; ``--strict-json`` parses every line and closes both gaps, at a fraction of the speed.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import contextlib
import functools
import gc
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import sys
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from multiprocessing.context import BaseContext
from operator import methodcaller
from pathlib import Path
from typing import Any

from audit.bundle import (
    MAX_ENTRIES_FILE_BYTES,
    VKEYS,
    BundleReader,
    ConsistencyProof,
    EntryFile,
    Manifest,
    ShardManifest,
    read_member,
    shard_of,
    shard_origin,
)
from audit.errors import (
    AuditError,
    ConsistencyProofError,
    FormatError,
    InvalidSignatureError,
    UnverifiedNoteError,
)
from audit.rfc9162 import HASH_SIZE, MerkleFrontier, verify_consistency
from audit.signed_note import (
    Checkpoint,
    Cosigner,
    Verifier,
    cosignatures,
    open_note,
    parse_checkpoint,
    parse_cosigner_vkey,
    parse_vkey,
)

# Report at most this many problems of one kind per shard (and per entries file), then a count.
MAX_PROBLEMS_PER_KIND = 20
MISSING_CODES = frozenset({"missing_shard", "missing_entries"})

EXIT_TRUSTED = 0
EXIT_FAILED = 1
EXIT_UNREADABLE = 2
EXIT_UNTRUSTED = 3

# What made a bundle trusted (Report.anchors).
PINNED_KEY = "pinned_key"
TRUSTED_CHECKPOINT = "trusted_checkpoint"
WITNESSES = "witnesses"

# What became of each month of the exported range (MonthCoverage.status).
EXPORTED = "exported"
PURGED = "purged"
EMPTY = "empty"
BEFORE_LOG = "before_log"
NOT_YET = "after_generation"
MISSING = "missing"
_MONTH_WORDS = {
    EXPORTED: "exported",
    PURGED: "purged by policy",
    EMPTY: "no entries (the month chain skips them)",
    BEFORE_LOG: "before the log began",
    NOT_YET: "after the bundle was generated",
    MISSING: "MISSING",
}

_sha256 = hashlib.sha256
_digest = methodcaller("digest")


@dataclass(frozen=True)
class Problem:
    """One thing that failed. ``index`` is a leaf index in ``shard`` (or the start of a failing range)."""

    code: str
    message: str
    shard: str | None = None
    index: int | None = None


@dataclass(frozen=True)
class ShardReport:
    shard: str
    origin: str
    first_index: int
    entry_count: int
    checkpoints_verified: int
    verified_size: int
    """Largest tree size whose root was recomputed from the entries and matched a signed root."""
    previous: str | None
    """The shard this one's first entry commits to, when that entry is in the bundle."""
    starts_log: bool
    """Entry 0 is in the bundle and commits to no previous shard: this is the log's first shard."""
    checkpoint: str | None = None
    """The newest checkpoint note of the shard in the bundle that verified: what an auditor keeps."""
    witnessed_size: int | None = None
    """With witnesses: the largest size whose checkpoint enough of them cosigned (and that was verified)."""


@dataclass(frozen=True)
class PurgedShard:
    shard: str
    size: int
    root: str
    purged_at: str


@dataclass(frozen=True)
class MonthCoverage:
    """What the bundle shows for one month of its range: one of the status constants above."""

    month: str
    status: str


@dataclass
class Report:
    bundle: str
    issuer: str
    since: str
    until: str
    generated_at: str
    keys_source: str
    """Whose keys counted: ``pinned`` (the auditor's ``--key``), ``trusted_checkpoint`` or ``witnesses`` (the
    bundle's keys that signed a checkpoint the auditor kept, or one their witnesses cosigned) or ``bundle``
    (every key shipped in the bundle: no anchor)."""
    keys: list[str]
    anchors: list[str] = field(default_factory=list)
    """What outside the bundle vouches for it (PINNED_KEY, TRUSTED_CHECKPOINT, WITNESSES); empty: nothing."""
    trusted_checkpoints: int = 0
    """How many checkpoints the auditor brought."""
    witnesses: int = 0
    """How many witness keys the auditor brought."""
    min_witnesses: int = 0
    """How many of them must have cosigned a checkpoint for it to count as witnessed."""
    shards: list[ShardReport] = field(default_factory=list)
    purged: list[PurgedShard] = field(default_factory=list)
    months: list[MonthCoverage] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    entries: int = 0
    seconds: float = 0.0

    @property
    def consistent(self) -> bool:
        """Everything in the bundle checks out against the keys that counted (whoever made them)."""
        return not self.problems

    @property
    def trusted(self) -> bool:
        return self.consistent and bool(self.anchors)

    @property
    def ok(self) -> bool:
        """Verified, and anchored outside the bundle: the only verdict an auditor can rely on."""
        return self.trusted

    @property
    def verdict(self) -> str:
        if not self.consistent:
            return "failed"
        return "trusted" if self.trusted else "untrusted"

    @property
    def missing(self) -> list[Problem]:
        return [p for p in self.problems if p.code in MISSING_CODES]

    def exit_status(self, *, allow_untrusted: bool = False) -> int:
        if not self.consistent:
            return EXIT_FAILED
        return EXIT_TRUSTED if self.trusted or allow_untrusted else EXIT_UNTRUSTED

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "verdict": self.verdict, "consistent": self.consistent, **asdict(self)}

    def render(self) -> str:
        lines = [f"bundle {self.bundle}: issuer {self.issuer}, range {self.since} .. {self.until}, "
                 f"generated {self.generated_at}"]
        if self.keys_source == "pinned":
            lines.append(f"keys: {len(self.keys)} pinned by the auditor")
        elif self.keys_source == "trusted_checkpoint":
            lines.append(f"keys: the {len(self.keys)} of the bundle that signed your trusted checkpoints")
        elif self.keys_source == "witnesses":
            lines.append(f"keys: the {len(self.keys)} of the bundle that signed checkpoints your witnesses cosigned")
        else:
            lines.append(f"keys: the {len(self.keys)} shipped in the bundle, which vouch for nothing "
                         "(pass --key or --trusted-checkpoint)")
        for s in self.shards:
            span = f"{s.first_index}..{s.first_index + s.entry_count - 1}" if s.entry_count else "none"
            chain = " (first shard of the log)" if s.starts_log else f", follows {s.previous}" if s.previous else ""
            lines.append(f"shard {s.shard}: entries {span} ({s.entry_count}), {s.checkpoints_verified} signed "
                         f"checkpoints, verified up to size {s.verified_size}{chain}")
        lines.extend(f"purged by policy: {p.shard} (size {p.size}, root {p.root}, purged {p.purged_at})"
                     for p in self.purged)
        lines.extend(f"{'months' if '..' in span else 'month'} {span}: {_MONTH_WORDS[status]}"
                     for span, status in _month_runs(self.months))
        lines.extend(f"MISSING: {_where(p)}{p.message}" for p in self.missing)
        others = [p for p in self.problems if p.code not in MISSING_CODES]
        lines.extend(f"PROBLEM {p.code}: {_where(p)}{p.message}" for p in others)
        rate = f", {self.entries / self.seconds:,.0f} entries/s" if self.seconds > 0 else ""
        if self.witnesses:
            lines.append(f"witnesses: a checkpoint counts when {self.min_witnesses} of your {self.witnesses} "
                         "cosigned it; " + ", ".join(f"{s.shard} up to size {s.witnessed_size or 0}"
                                                     for s in self.shards))
        if self.anchors:
            lines.append("trust: checked against " + " and ".join(_ANCHOR_WORDS[a] for a in self.anchors))
        elif self.trusted_checkpoints:
            lines.append("trust: none: no key in the bundle signed the checkpoints you kept, so it does not come "
                         "from the log you audited before (if the log's key changed, pin the new one with --key)")
        else:
            lines.append("trust: none (no pinned key, no trusted checkpoint): anyone could have made this bundle")
        if not self.consistent:
            verdict = f"FAILED ({len(self.problems)} problems)"
        else:
            verdict = "OK" if self.trusted else "SELF-CONSISTENT BUT UNTRUSTED"
        lines.append(f"{verdict}: {self.entries} entries checked in {self.seconds:.2f} s{rate}")
        return "\n".join(lines)


_ANCHOR_WORDS = {PINNED_KEY: "your pinned key", TRUSTED_CHECKPOINT: "the checkpoint you kept",
                 WITNESSES: "your witnesses' cosignatures"}


def _month_runs(months: Sequence[MonthCoverage]) -> list[tuple[str, str]]:
    """Consecutive months of one status as ``first..last`` spans, in order."""
    runs: list[tuple[str, str, str]] = []
    for m in months:
        if runs and runs[-1][2] == m.status and _next_shard(runs[-1][1]) == m.month:
            runs[-1] = (runs[-1][0], m.month, m.status)
        else:
            runs.append((m.month, m.month, m.status))
    return [(first if first == last else f"{first}..{last}", status) for first, last, status in runs]


def _where(problem: Problem) -> str:
    if problem.shard is None:
        return ""
    return f"[{problem.shard}] " if problem.index is None else f"[{problem.shard} #{problem.index}] "


class _Problems:
    """Collects problems, capping each (shard, code) so one broken shard cannot bury the rest."""

    def __init__(self) -> None:
        self._items: list[Problem] = []
        self._counts: Counter[tuple[str | None, str]] = Counter()

    def add(self, code: str, message: str, shard: str | None = None, index: int | None = None) -> None:
        self.extend([Problem(code, message, shard, index)])

    def extend(self, problems: Iterable[Problem]) -> None:
        for problem in problems:
            key = (problem.shard, problem.code)
            self._counts[key] += 1
            if self._counts[key] <= MAX_PROBLEMS_PER_KIND:
                self._items.append(problem)

    def result(self) -> list[Problem]:
        summaries = [
            Problem(code, f"... and {count - MAX_PROBLEMS_PER_KIND} more problems of this kind", shard)
            for (shard, code), count in self._counts.items()
            if count > MAX_PROBLEMS_PER_KIND
        ]
        return sorted(self._items + summaries, key=lambda p: (p.shard or "", -1 if p.index is None else p.index))


# --- scanning entries files (runs in worker processes) ----------------------------------------------------


@dataclass(frozen=True)
class _ScanJob:
    shard: str
    file: EntryFile
    cuts: tuple[int, ...]
    """Tree sizes strictly inside the file at which the caller needs a root."""
    strict_json: bool


@dataclass(frozen=True)
class _ScanResult:
    segments: tuple[MerkleFrontier, ...] | None
    """Compact ranges of the file cut at ``cuts``; None when the file cannot be placed in the tree."""
    lines: int
    problems: tuple[Problem, ...]


def _leaf_hashes(data: bytes) -> list[bytes]:
    # One C-level pass puts the RFC 9162 leaf prefix in front of every line, so hashing needs no
    # per-entry concatenation; the empty piece after the final newline is dropped.
    pieces = data.replace(b"\n", b"\n\x00").split(b"\n")
    pieces.pop()
    if pieces:
        pieces[0] = b"\x00" + pieces[0]
    return pieces


def _scan(zf: zipfile.ZipFile, job: _ScanJob) -> _ScanResult:
    file = job.file
    try:
        data = read_member(zf, file.name, MAX_ENTRIES_FILE_BYTES)
    except FormatError as exc:
        return _ScanResult(None, 0, (Problem("malformed_bundle", str(exc), job.shard, file.first_index),))
    problems: list[Problem] = []
    if data and not data.endswith(b"\n"):
        problems.append(Problem("malformed_bundle", f"{file.name} does not end with a newline", job.shard,
                                file.first_index + data.count(b"\n")))
        data += b"\n"
    prefixed = _leaf_hashes(data)
    problems.extend(_check_entries(data, prefixed, job))
    if len(prefixed) != file.count:
        problems.append(Problem("entry_count", f"{file.name} holds {len(prefixed)} entries where the manifest "
                                f"says {file.count}; later roots cannot be recomputed", job.shard, file.first_index))
        return _ScanResult(None, len(prefixed), tuple(problems))
    leaves = list(map(_digest, map(_sha256, prefixed)))
    bounds = (file.first_index, *job.cuts, file.end)
    segments = tuple(
        MerkleFrontier.of_leaves(lo, leaves[lo - file.first_index : hi - file.first_index])
        for lo, hi in pairwise(bounds)
    )
    return _ScanResult(segments, len(prefixed), tuple(problems))


@functools.lru_cache(maxsize=64)
def _position_pattern(shard: str) -> re.Pattern[bytes]:
    # One match per line at most: the match runs to the end of its line.
    return re.compile(rb',"seq":([0-9]+),"shard":"' + re.escape(shard.encode()) + rb'"[^\n]*\n')


def _check_entries(data: bytes, prefixed: list[bytes], job: _ScanJob) -> list[Problem]:
    first, n = job.file.first_index, len(prefixed)
    if not job.strict_json:
        found = _position_pattern(job.shard).findall(data)
        if found == list(map(b"%d".__mod__, range(first, first + n))):
            return _check_lines(prefixed, first, job.shard, sorted({0, n - 1}) if n else [])
    return _check_lines(prefixed, first, job.shard, range(n))


def _check_lines(prefixed: list[bytes], first: int, shard: str, offsets: Iterable[int]) -> list[Problem]:
    problems: list[Problem] = []
    for offset in offsets:
        problem = _check_line(prefixed[offset][1:], first + offset, shard)
        if problem is not None:
            problems.append(problem)
            if len(problems) > MAX_PROBLEMS_PER_KIND:
                break
    return problems


def _check_line(line: bytes, index: int, shard: str) -> Problem | None:
    try:
        entry = json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return Problem("entry_malformed", f"entry {index} is not UTF-8 JSON", shard, index)
    if not isinstance(entry, dict):
        return Problem("entry_malformed", f"entry {index} is not a JSON object", shard, index)
    seq = entry.get("seq")
    if type(seq) is not int or seq != index:
        return Problem("entry_misplaced", f"the entry at index {index} carries seq {seq!r}", shard, index)
    if entry.get("shard") != shard:
        return Problem("entry_misplaced", f"entry {index} carries shard {entry.get('shard')!r}", shard, index)
    return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_WORKER: dict[str, zipfile.ZipFile] = {}


def _init_worker(path: str) -> None:
    # The scan makes many short-lived bytes objects and no reference cycles: collections only cost time.
    gc.disable()
    _WORKER["zip"] = zipfile.ZipFile(path)


def _scan_in_worker(job: _ScanJob) -> _ScanResult:
    return _scan(_WORKER["zip"], job)


def _pool_context() -> BaseContext:
    # fork starts workers in milliseconds and is safe while this process has a single thread; otherwise
    # (or off Linux) spawn, which re-imports this module in each worker.
    if sys.platform == "linux" and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _scan_all(reader: BundleReader, jobs: list[_ScanJob], workers: int) -> Generator[_ScanResult, None, None]:
    if workers <= 1 or len(jobs) < 2:
        for job in jobs:
            yield _scan(reader.zipfile, job)
        return
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=_pool_context(),
                             initializer=_init_worker, initargs=(reader.path,)) as pool:
        yield from pool.map(_scan_in_worker, jobs)


# --- per-shard checks -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Signed:
    root: bytes
    source: str


def _month_start(shard: str) -> datetime:
    return datetime.strptime(shard, "%Y-%m").replace(tzinfo=UTC)


def _next_shard(shard: str) -> str:
    year, month = int(shard[:4]), int(shard[5:])
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def _shard_of_origin(issuer: str, origin: str) -> str | None:
    shard = origin.rsplit("/", 1)[-1]
    return shard if len(shard) == 7 and shard_origin(issuer, shard) == origin else None


class _ShardCheck:
    """Everything known about one shard of the bundle, gathered in steps, then judged by ``evaluate``."""

    def __init__(self, manifest: ShardManifest, bundle: Manifest) -> None:
        self.m = manifest
        self.name = manifest.shard
        self.files = manifest.entry_files(bundle.entries_per_file)
        self.covers_start = _month_start(self.name) >= bundle.since
        # A month still open when the bundle was generated may have grown since: only a month that had
        # ended by then is known to be complete.
        self.covers_end = _month_start(_next_shard(self.name)) <= min(bundle.until, bundle.generated_at)
        self.signed: dict[int, _Signed] = {}
        self.checkpoints_verified = 0
        self.start: MerkleFrontier | None = MerkleFrontier() if manifest.first_index == 0 else None
        self.consistency: tuple[ConsistencyProof, ...] = ()
        self.previous: Checkpoint | None = None
        self.previous_shard: str | None = None
        self.genesis = False
        self.states: dict[int, MerkleFrontier] = {}
        self.broken_at: int | None = None
        self.lines = 0
        self.notes: dict[int, str] = {}
        """Verified checkpoint notes of the bundle by size (the newest only)."""
        self.witnessed: set[int] = set()
        """Sizes whose checkpoint carries enough valid cosignatures of the auditor's witnesses."""
        self.authenticated: set[int] = set()
        """Signed sizes whose roots the entries reproduce or a verified proof links (set by ``evaluate``)."""

    @property
    def newest_note(self) -> str | None:
        return self.notes[max(self.notes)] if self.notes else None

    def add_signed(self, checkpoint: Checkpoint, source: str, problems: _Problems) -> None:
        known = self.signed.get(checkpoint.size)
        if known is None:
            self.signed[checkpoint.size] = _Signed(checkpoint.root, source)
        elif known.root != checkpoint.root:
            # Two signed roots for one size: the log showed different histories (a split view).
            problems.add("conflicting_checkpoints", f"{source} and {known.source} sign different roots for "
                         f"size {checkpoint.size}", self.name, checkpoint.size)

    def load(self, reader: BundleReader, verifiers: Sequence[Verifier], issuer: str, problems: _Problems,
             witnesses: _Witnesses | None = None) -> None:
        if self.m.origin != shard_origin(issuer, self.name):
            problems.add("wrong_origin", f"origin {self.m.origin!r} is not the issuer's origin for {self.name}",
                         self.name)
        for name in self.m.checkpoint_names():
            read: list[bytes] = []
            checkpoint = _open_checkpoint(functools.partial(_read_into, reader, name, read), name, verifiers,
                                          problems, self.name)
            if checkpoint is None:
                continue
            if checkpoint.origin != self.m.origin:
                problems.add("wrong_origin", f"{name} is for {checkpoint.origin!r}", self.name)
                continue
            self.checkpoints_verified += 1
            self.add_signed(checkpoint, name, problems)
            note = read[0].decode()
            if checkpoint.size >= max(self.notes, default=0):
                self.notes[checkpoint.size] = note
            if witnesses is not None and witnesses.count(note, name, problems, self.name) >= witnesses.quorum:
                self.witnessed.add(checkpoint.size)
        try:
            proofs = reader.proofs(self.m)
        except FormatError as exc:
            problems.add("malformed_bundle", str(exc), self.name)
        else:
            self.start, self.consistency = proofs.frontier, proofs.consistency
        if self.start is None:
            self.broken_at = self.m.first_index
        if self.m.first_index == 0 and self.m.entry_count:
            self._load_link(reader, verifiers, problems)

    def _load_link(self, reader: BundleReader, verifiers: Sequence[Verifier], problems: _Problems) -> None:
        try:
            entry = json.loads(reader.first_line(self.files[0].name))
        except (FormatError, ValueError, RecursionError):
            return  # the scan reports the malformed entry at index 0
        if not isinstance(entry, dict) or entry.get("action") != "shard.opened" or entry.get("previous") is None:
            self.genesis = True
            return
        previous = entry["previous"]
        note = previous.get("note") if isinstance(previous, dict) else None
        if not isinstance(note, str):
            problems.add("broken_link", "shard.opened names no previous checkpoint note", self.name, 0)
            return
        checkpoint = _open_checkpoint(note.encode, "the previous shard's final checkpoint in entry 0",
                                      verifiers, problems, self.name)
        if checkpoint is None:
            return
        stated = (previous.get("origin"), previous.get("size"), previous.get("root"))
        if stated != (checkpoint.origin, checkpoint.size, _b64(checkpoint.root)):
            problems.add("broken_link", "entry 0 states a previous checkpoint other than the note it carries",
                         self.name, 0)
            return
        self.previous = checkpoint

    def interesting_sizes(self) -> set[int]:
        first, end = self.m.first_index, self.m.end
        sizes = {s for s in self.signed if first <= s <= end} | {end}
        for proof in self.consistency:
            sizes.update(s for s in (proof.old_size, proof.new_size) if first <= s <= end)
        return sizes

    def scan_jobs(self, strict_json: bool) -> list[_ScanJob]:
        sizes = sorted(self.interesting_sizes())
        jobs = []
        for file in self.files:
            lo, hi = bisect.bisect_right(sizes, file.first_index), bisect.bisect_left(sizes, file.end)
            jobs.append(_ScanJob(self.name, file, tuple(sizes[lo:hi]), strict_json))
        return jobs

    def merge(self, results: Iterable[tuple[_ScanJob, _ScanResult]], problems: _Problems) -> None:
        sizes = self.interesting_sizes()
        frontier = self.start.copy() if self.start is not None else None
        if frontier is not None and frontier.end in sizes:
            self.states[frontier.end] = frontier.copy()
        for job, result in results:
            self.lines += result.lines
            problems.extend(result.problems)
            if frontier is None or result.segments is None:
                if self.broken_at is None:
                    self.broken_at = job.file.first_index
                frontier = None
                continue
            for segment in result.segments:
                frontier.merge(segment)
                if frontier.end in sizes:
                    self.states[frontier.end] = frontier.copy()

    def evaluate(self, reader: BundleReader, problems: _Problems) -> int:
        """Judge the shard; returns the largest tree size whose recomputed root matched a signed root."""
        first, end, name = self.m.first_index, self.m.end, self.name
        roots = {size: state.root() for size, state in self.states.items()}
        matched = {s for s, signed in self.signed.items() if roots.get(s) == signed.root}
        mismatched = sorted(s for s, signed in self.signed.items() if s in roots and roots[s] != signed.root)
        linked, disputed = self._check_proofs(roots, matched, mismatched[0] if mismatched else None, problems)
        if mismatched:
            self._localise(reader, mismatched, problems)
        if self.covers_start and first > 0:
            problems.add("missing_entries", f"entries 0..{first - 1} are missing although the range covers the "
                         "whole month", name, 0)
        for size, signed in sorted(self.signed.items()):
            if size in roots or size in linked or size in disputed:
                continue
            if self.broken_at is not None and first <= size <= end:
                problems.add("unchecked", f"{signed.source} (size {size}) cannot be checked: the entries are "
                             f"damaged from index {self.broken_at}", name, self.broken_at)
            elif size > end and self.covers_end:
                problems.add("missing_entries", f"entries {end}..{size - 1} are missing: {signed.source} has size "
                             f"{size} and the range covers the end of the month", name, end)
            else:
                problems.add("unlinked_checkpoint", f"{signed.source} (size {size}) lies outside the exported "
                             f"entries {first}..{end - 1} and no consistency proof links it to them", name, size)
        self.authenticated = (matched | linked) - disputed
        # Entries under a checkpoint or proof that failed are already reported; these had no check at all.
        covered = max((s for s in self.signed.keys() | matched | disputed if s <= end), default=0)
        if self.m.entry_count and covered < end and self.broken_at is None:
            start = max(covered, first)
            problems.add("unsigned_entries", f"entries {start}..{end - 1} are not covered by a trusted signed "
                         "checkpoint", name, start)
        return max(matched, default=0)

    def _root_of(self, size: int, roots: dict[int, bytes]) -> tuple[bytes, bool] | None:
        """The root at ``size`` and whether it was recomputed (True) or only signed (False)."""
        if size in roots:
            return roots[size], True
        signed = self.signed.get(size)
        return (signed.root, False) if signed is not None else None

    def _check_proofs(self, roots: dict[int, bytes], matched: set[int], suspect_from: int | None,
                      problems: _Problems) -> tuple[set[int], set[int]]:
        """Verify the consistency proofs. Returns the signed sizes linked to authenticated roots, and the
        sizes of failed proofs (reported here).

        A proof from a recomputed root to a signed checkpoint authenticates the recomputed root (the signed
        tree extends it; it joins ``matched``); a proof from a signed checkpoint to an authenticated root
        links that checkpoint.
        """
        linked: set[int] = set()
        disputed: set[int] = set()
        verified: list[tuple[int, bool, int, bool]] = []
        for proof in self.consistency:
            old, new = self._root_of(proof.old_size, roots), self._root_of(proof.new_size, roots)
            if old is None or new is None:
                problems.add("malformed_bundle", f"consistency proof {proof.old_size} -> {proof.new_size} refers "
                             "to a size with no known root", self.name, proof.old_size)
                continue
            try:
                verify_consistency(proof.old_size, proof.new_size, proof.hashes, old[0], new[0])
            except ConsistencyProofError as exc:
                disputed.update((proof.old_size, proof.new_size))
                computed = [size for size, (_, recomputed) in ((proof.old_size, old), (proof.new_size, new))
                            if recomputed]
                # A root recomputed past a mismatch is already known to be wrong: no separate finding.
                if suspect_from is None or all(size < suspect_from for size in computed):
                    problems.add("inconsistent", f"consistency proof {proof.old_size} -> {proof.new_size}: {exc}",
                                 self.name, proof.old_size)
                continue
            verified.append((proof.old_size, old[1], proof.new_size, new[1]))
        changed = True
        while changed:
            changed = False
            for old_size, old_computed, new_size, new_computed in verified:
                if old_computed and not new_computed and new_size not in linked:
                    matched.add(old_size)
                    linked.add(new_size)
                    changed = True
                elif not old_computed and new_computed and new_size in matched and old_size not in linked:
                    linked.add(old_size)
                    changed = True
        return linked, disputed

    def _localise(self, reader: BundleReader, mismatched: list[int], problems: _Problems) -> None:
        """Name the entries that differ from the signed tree.

        The bundle's leaf hashes are only trusted once they reproduce a signed root, so a tampered hash
        file cannot shift the blame; without them the report names the range between checkpoints.
        """
        first, upto = self.m.first_index, mismatched[-1]
        sizes = sorted(s for s in self.signed if first < s <= upto)
        diffs, proven = self._compare_leaf_hashes(reader, sizes, upto)
        exact = [i for i in diffs if i < proven]
        for index in exact:
            size = sizes[bisect.bisect_right(sizes, index)]
            problems.add("entry_altered", f"entry {index} is not the entry committed to by "
                         f"{self.signed[size].source} (size {size})", self.name, index)
        if not exact:
            size = mismatched[0]
            before = max((s for s in self.signed if first <= s < size), default=first)
            problems.add("root_mismatch", f"entries {before}..{size - 1} do not hash to the root signed by "
                         f"{self.signed[size].source} (size {size})", self.name, before)

    def _compare_leaf_hashes(self, reader: BundleReader, sizes: list[int], upto: int) -> tuple[list[int], int]:
        """Indices whose recomputed leaf hash differs from the bundle's, and the largest signed size up to
        which the bundle's leaf hashes are proven (they reproduce that signed root)."""
        diffs: list[int] = []
        proven = self.m.first_index
        if self.start is None:
            return diffs, proven
        hints = self.start.copy()
        for file in self.files:
            if file.first_index >= upto:
                break
            try:
                data = reader.read(file.name, MAX_ENTRIES_FILE_BYTES)
                stored = reader.read(file.leaf_hashes)
            except FormatError:
                break
            computed = list(map(_digest, map(_sha256, _leaf_hashes(data))))
            given = [stored[i : i + HASH_SIZE] for i in range(0, len(stored), HASH_SIZE)]
            if len(given) != file.count or len(computed) != file.count:
                break
            diffs.extend(file.first_index + i for i, pair in enumerate(zip(computed, given, strict=True))
                         if pair[0] != pair[1])
            cuts = [s for s in sizes if file.first_index < s < file.end]
            for lo, hi in pairwise([file.first_index, *cuts, file.end]):
                hints.merge(MerkleFrontier.of_leaves(lo, given[lo - file.first_index : hi - file.first_index]))
                signed = self.signed.get(hi)
                if signed is not None and hints.root() == signed.root:
                    proven = hi
        return diffs, proven


@dataclass(frozen=True)
class _Witnesses:
    """The witnesses the auditor trusts (tlog-cosignature keys) and how many must cosign a checkpoint."""

    cosigners: tuple[Cosigner, ...]
    quorum: int

    def count(self, note: str, what: str, problems: _Problems | None, shard: str | None) -> int:
        """How many of the witnesses validly cosigned ``note``; a bad cosignature of theirs is reported."""
        try:
            return len(cosignatures(note, self.cosigners))
        except InvalidSignatureError as exc:
            if problems is not None:
                problems.add("bad_cosignature", f"{what}: {exc}", shard)
        except FormatError:
            pass  # reported as a malformed checkpoint where the note itself is read
        return 0


def _check_witnessed(checks: dict[str, _ShardCheck], witnesses: _Witnesses, problems: _Problems) -> None:
    """Every exported entry must lie under a checkpoint that enough of the auditor's witnesses cosigned."""
    for check in checks.values():
        if not check.m.entry_count:
            continue
        covered = max((s for s in check.witnessed if s in check.authenticated), default=0)
        if covered < check.m.end:
            start = max(covered, check.m.first_index)
            problems.add("unwitnessed_entries", f"entries {start}..{check.m.end - 1} are under no checkpoint that "
                         f"{witnesses.quorum} of your {len(witnesses.cosigners)} witnesses cosigned",
                         check.name, start)


def _read_into(reader: BundleReader, name: str, sink: list[bytes]) -> bytes:
    data = reader.read(name)
    sink.append(data)
    return data


def _open_checkpoint(read: Callable[[], bytes], what: str, verifiers: Sequence[Verifier], problems: _Problems,
                     shard: str | None) -> Checkpoint | None:
    """Read, verify and parse one checkpoint note; reports the failure and returns None if any."""
    try:
        body, _ = open_note(read().decode("utf-8"), verifiers)
        return parse_checkpoint(body)
    except UnicodeDecodeError:
        problems.add("malformed_checkpoint", f"{what} is not UTF-8", shard)
    except InvalidSignatureError as exc:
        problems.add("bad_signature", f"{what}: {exc}", shard)
    except UnverifiedNoteError as exc:
        problems.add("unverified_checkpoint", f"{what}: {exc}", shard)
    except FormatError as exc:
        problems.add("malformed_checkpoint", f"{what}: {exc}", shard)
    return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- the whole bundle -------------------------------------------------------------------------------------


def verify_bundle(
    path: str | os.PathLike[str],
    *,
    keys: Sequence[str] | None = None,
    trusted_checkpoints: Sequence[str] = (),
    witnesses: Sequence[str] = (),
    min_witnesses: int = 1,
    jobs: int | None = None,
    strict_json: bool = False,
) -> Report:
    """Verify a bundle against the anchors the auditor brings (the rule is ``_trust``'s).

    ``keys`` (vkey strings; None or empty: none) pins the log's keys. ``trusted_checkpoints`` are signed
    checkpoint notes the auditor kept from earlier audits. ``witnesses`` are witness cosigner vkeys, of which
    ``min_witnesses`` must have cosigned a checkpoint for it to count. Raises FormatError when the bundle, a
    pinned key or a witness key cannot be read at all; everything else is reported in the Report, whose
    ``verdict`` is "trusted" only when an anchor holds and nothing failed.
    """
    started = time.perf_counter()
    problems = _Problems()
    quorum = _Witnesses(tuple(parse_cosigner_vkey(w) for w in witnesses), min_witnesses) if witnesses else None
    if quorum is not None and not 1 <= min_witnesses <= len(witnesses):
        raise FormatError(f"--min-witnesses must be between 1 and the {len(witnesses)} witnesses given")
    with BundleReader(path) as reader:
        bundle = reader.manifest
        verifiers, keys_source, key_strings = _trust(reader, keys or None, trusted_checkpoints, quorum, problems)
        checks = {m.shard: _ShardCheck(m, bundle) for m in bundle.shards}
        for check in checks.values():
            check.load(reader, verifiers, bundle.issuer, problems, quorum)
        purged = _check_purges(reader, verifiers, bundle.issuer, checks, problems)
        named_missing = _follow_links(bundle, checks, purged, problems)
        held = _add_trusted(trusted_checkpoints, verifiers, issuer=bundle.issuer, checks=checks, purged=purged,
                            problems=problems)
        _recompute(reader, checks, jobs or os.cpu_count() or 1, strict_json, problems)
        verified_sizes = {c.name: c.evaluate(reader, problems) for c in checks.values()}
        if quorum is not None:
            _check_witnessed(checks, quorum, problems)
        shard_reports = [
            ShardReport(shard=c.name, origin=c.m.origin, first_index=c.m.first_index, entry_count=c.m.entry_count,
                        checkpoints_verified=c.checkpoints_verified, verified_size=verified_sizes[c.name],
                        previous=c.previous_shard, starts_log=c.genesis, checkpoint=c.newest_note,
                        witnessed_size=max((s for s in c.witnessed if s in c.authenticated), default=None)
                        if quorum is not None else None)
            for c in checks.values()
        ]
        months = _check_coverage(bundle, checks, purged, named_missing, problems)
    anchors = [PINNED_KEY] if keys_source == "pinned" else []
    anchors += [TRUSTED_CHECKPOINT] if held else []
    anchors += [WITNESSES] if quorum is not None else []
    return Report(
        bundle=os.fspath(path), issuer=bundle.issuer, since=_rfc3339(bundle.since), until=_rfc3339(bundle.until),
        generated_at=_rfc3339(bundle.generated_at), keys_source=keys_source, keys=key_strings, anchors=anchors,
        trusted_checkpoints=len(trusted_checkpoints), witnesses=len(witnesses),
        min_witnesses=min_witnesses if witnesses else 0,
        shards=shard_reports, purged=list(purged.values()), months=months, problems=problems.result(),
        entries=sum(c.lines for c in checks.values()), seconds=time.perf_counter() - started,
    )


def _trust(reader: BundleReader, keys: Sequence[str] | None, trusted_checkpoints: Sequence[str],
           witnesses: _Witnesses | None, problems: _Problems) -> tuple[list[Verifier], str, list[str]]:
    """The keys whose signatures count, and where they come from. The rule:

    1. Pinned keys (``--key``), when given, are the only keys that count; the bundle's are ignored.
    2. Otherwise, the keys shipped in the bundle that signed something the auditor trusts independently:
       a checkpoint kept from an earlier audit (``--trusted-checkpoint``; the auditor had it before this
       bundle existed, so a key that signed it is the log's) or a checkpoint of the bundle that enough of the
       auditor's witnesses cosigned (``--witness``; a witness cosigns only what the log's key signed, and
       only once it is consistent with all it saw before). A key that signed neither (a forger's, or a key
       rotated in since: pin it with ``--key``) does not count. If no shipped key qualifies, the bundle's
       own keys are used to report what is inside it, and the anchors fail (unverified_checkpoint for a
       kept checkpoint, unwitnessed_entries for witnesses).
    3. Otherwise every key shipped in the bundle counts, which anchors nothing: at best the verdict is
       "self-consistent but untrusted".

    Whatever the keys, a kept checkpoint is an anchor only once the bundle is shown consistent with it
    (same root at that size, a consistency proof, or the month chain), and witnesses only once every
    exported entry lies under a verified checkpoint that enough of them cosigned.
    """
    if keys is not None:
        return [parse_vkey(key) for key in keys], "pinned", list(keys)
    try:
        shipped = reader.vkeys()
    except FormatError as exc:
        problems.add("malformed_bundle", str(exc))
        return [], "bundle", []
    verifiers: list[tuple[str, Verifier]] = []
    for vkey in shipped:
        try:
            verifiers.append((vkey, parse_vkey(vkey)))
        except FormatError as exc:
            problems.add("malformed_bundle", f"{VKEYS}: {exc}")
    witnessed = _witnessed_notes(reader, witnesses) if witnesses is not None else []
    anchored = [(vkey, v) for vkey, v in verifiers
                if any(_signed_by(note, v) for note in (*trusted_checkpoints, *witnessed))]
    if not anchored:
        return [v for _, v in verifiers], "bundle", [vkey for vkey, _ in verifiers]
    kept = any(_signed_by(note, v) for _, v in anchored for note in trusted_checkpoints)
    return [v for _, v in anchored], "trusted_checkpoint" if kept else "witnesses", [vkey for vkey, _ in anchored]


def _witnessed_notes(reader: BundleReader, witnesses: _Witnesses) -> list[str]:
    """The bundle's checkpoint notes that enough of the auditor's witnesses cosigned (signatures checked
    again, and reported, when the shards are loaded)."""
    found = []
    for shard in reader.manifest.shards:
        for name in shard.checkpoint_names():
            try:
                note = reader.read(name).decode()
            except (FormatError, UnicodeDecodeError):
                continue
            if witnesses.count(note, name, None, shard.shard) >= witnesses.quorum:
                found.append(note)
    return found


def _signed_by(note: str, verifier: Verifier) -> bool:
    try:
        open_note(note, [verifier])
    except AuditError:
        return False
    return True


def _check_purges(reader: BundleReader, verifiers: Sequence[Verifier], issuer: str,
                  checks: dict[str, _ShardCheck], problems: _Problems) -> dict[str, PurgedShard]:
    try:
        records = reader.purges()
    except FormatError as exc:
        problems.add("malformed_bundle", str(exc))
        return {}
    purged: dict[str, PurgedShard] = {}
    for record in records:
        what = f"the purge record of {record.shard}"
        checkpoint = _open_checkpoint(record.checkpoint.encode, what, verifiers, problems, record.shard)
        if checkpoint is None:
            continue
        if checkpoint.origin != shard_origin(issuer, record.shard):
            problems.add("wrong_origin", f"{what} carries a checkpoint of {checkpoint.origin!r}", record.shard)
        elif record.shard in checks:
            problems.add("malformed_bundle", f"{record.shard} is both purged and exported", record.shard)
        else:
            purged[record.shard] = PurgedShard(record.shard, checkpoint.size, _b64(checkpoint.root),
                                               record.purged_at)
    return purged


def _add_trusted(notes: Sequence[str], verifiers: Sequence[Verifier], *, issuer: str,
                 checks: dict[str, _ShardCheck], purged: dict[str, PurgedShard], problems: _Problems) -> bool:
    """Put each checkpoint the auditor kept where the bundle can be checked against it; returns whether any
    could be (the shards' evaluation then reports any disagreement with it)."""
    # Final checkpoints of months outside the exported shards: purge records, and what the month chain names.
    finals = {c.previous_shard: (c.previous.size, _b64(c.previous.root), f"{c.previous_shard} (named by the "
                                 f"month chain)") for c in checks.values()
              if c.previous is not None and c.previous_shard is not None and c.previous_shard not in checks}
    finals |= {name: (p.size, p.root, f"purged {name}") for name, p in purged.items()}
    held = False
    for number, note in enumerate(notes, 1):
        what = f"trusted checkpoint {number}"
        checkpoint = _open_checkpoint(note.encode, what, verifiers, problems, None)
        if checkpoint is None:
            continue
        shard = _shard_of_origin(issuer, checkpoint.origin)
        if shard is not None and shard in checks:
            checks[shard].add_signed(checkpoint, f"the {what}", problems)
            held = True
        elif shard is not None and shard in finals:
            size, root, where = finals[shard]
            if (checkpoint.size, _b64(checkpoint.root)) == (size, root):
                held = True
            elif checkpoint.size >= size:
                problems.add("inconsistent", f"{what} (size {checkpoint.size}) contradicts the final checkpoint "
                             f"of {where} (size {size})", shard, checkpoint.size)
            else:
                problems.add("trusted_checkpoint_unchecked", f"{what} (size {checkpoint.size}) predates the final "
                             f"checkpoint of {where} and cannot be linked to it; export from the start of "
                             f"{shard} to check it", shard)
        else:
            problems.add("trusted_checkpoint_unchecked", f"{what} is for {checkpoint.origin!r}, which the bundle "
                         "does not contain; export a range that includes its month", shard)
    return held


def _follow_links(bundle: Manifest, checks: dict[str, _ShardCheck], purged: dict[str, PurgedShard],
                  problems: _Problems) -> set[str]:
    """Hand each shard's link to the previous shard's final checkpoint to where it can be checked; returns
    the months a link names that are neither exported nor purged."""
    months = set(_months(bundle.since, bundle.until))
    named_missing: set[str] = set()
    known = set(checks) | set(purged)
    for check in checks.values():
        if check.genesis and min(known) < check.name:
            # A second "first shard" would let a log restart its chain and hide what came before.
            problems.add("broken_link", f"entry 0 of {check.name} starts a new log although earlier shards exist",
                         check.name, 0)
        previous = check.previous
        if previous is None:
            continue
        shard = _shard_of_origin(bundle.issuer, previous.origin)
        if shard is None or shard >= check.name:
            problems.add("broken_link", f"entry 0 names {previous.origin!r}, not an earlier shard of this log",
                         check.name, 0)
            continue
        check.previous_shard = shard
        if shard in checks:
            checks[shard].add_signed(previous, f"the final checkpoint named by {check.name} entry 0", problems)
        elif shard in purged:
            final = purged[shard]
            if (previous.size, _b64(previous.root)) != (final.size, final.root):
                problems.add("broken_link", f"entry 0 names a final checkpoint of {shard} (size {previous.size}) "
                             f"other than its purge record's (size {final.size})", check.name, 0)
        elif shard in months:
            named_missing.add(shard)
            problems.add("missing_shard", f"{shard} is neither exported nor purged, yet {check.name} entry 0 "
                         f"commits to its final checkpoint (size {previous.size})", shard, 0)
    return named_missing


def _recompute(reader: BundleReader, checks: dict[str, _ShardCheck], workers: int, strict_json: bool,
               problems: _Problems) -> None:
    plan = [(check, check.scan_jobs(strict_json)) for check in checks.values()]
    jobs = [job for _, shard_jobs in plan for job in shard_jobs]
    with contextlib.closing(_scan_all(reader, jobs, workers)) as results:
        for check, shard_jobs in plan:
            check.merge(zip(shard_jobs, itertools.islice(results, len(shard_jobs)), strict=True), problems)


def _check_coverage(bundle: Manifest, checks: dict[str, _ShardCheck], purged: dict[str, PurgedShard],
                    named_missing: set[str], problems: _Problems) -> list[MonthCoverage]:
    """Every month of the range must be exported, purged, shown empty by the month chain, lie before the log
    began, or begin after the bundle was generated; any other month is missing.

    The chain runs backwards (each shard commits to its predecessor), so a month after the last exported
    shard can never be shown empty: the gateway opens a shard every month, so up to the month the bundle was
    generated in, its absence is reported. Months before the earliest shard or purge record that no link
    names lie before the log began (when that shard's entry 0 commits to no predecessor, the bundle proves
    it; a purged first month's predecessors were purged before it, oldest first).
    """
    months = _months(bundle.since, bundle.until)
    generated = shard_of(bundle.generated_at)
    skipped: set[str] = set()
    for check in checks.values():
        if check.previous_shard is not None:
            skipped.update(m for m in months if check.previous_shard < m < check.name)
    earliest = min(set(checks) | set(purged) | named_missing, default=None)
    coverage = []
    for month in months:
        if month in checks:
            status = EXPORTED
        elif month in purged:
            status = PURGED
        elif month in named_missing:
            status = MISSING  # reported by _follow_links
        elif month in skipped:
            status = EMPTY
        elif earliest is not None and month < earliest:
            status = BEFORE_LOG
        elif month > generated:
            status = NOT_YET
        else:
            status = MISSING
            problems.add("missing_shard", f"no shard, purge record or month link accounts for {month}", month, 0)
        coverage.append(MonthCoverage(month, status))
    return coverage


def _months(since: datetime, until: datetime) -> list[str]:
    if until <= since:
        return []
    month, last = shard_of(since), shard_of(until - timedelta(microseconds=1))
    months = [month]
    while month < last:
        month = _next_shard(month)
        months.append(month)
    return months




def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- command line -----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m audit.verify", description="Verify an audit export bundle offline.",
        epilog="Exit status: 0 verified and trusted, 1 a check failed, 2 unreadable input, 3 self-consistent "
               "but nothing outside the bundle vouches for it (0 with --allow-untrusted).")
    parser.add_argument("bundle", help="the bundle (.zip) to verify")
    parser.add_argument("--key", action="append", metavar="VKEY",
                        help="the log's signed-note verifier key, as GET /v1/audit/keys or `consent-gateway audit "
                             "keys` print it (repeatable); only these keys' signatures count")
    parser.add_argument("--trusted-checkpoint", action="append", default=[], metavar="FILE",
                        help="a signed checkpoint kept from an earlier audit (repeatable); the bundle must be "
                             "consistent with it, and without --key the bundle's keys that signed it are pinned")
    parser.add_argument("--witness", action="append", default=[], metavar="VKEY",
                        help="a witness's cosigning key (tlog-cosignature vkey, repeatable); every exported entry "
                             "must lie under a checkpoint that --min-witnesses of them cosigned")
    parser.add_argument("--min-witnesses", type=int, default=1, metavar="K",
                        help="how many of the --witness keys must have cosigned a checkpoint (default 1)")
    parser.add_argument("--allow-untrusted", action="store_true",
                        help="exit 0 for a self-consistent bundle even when no pinned key or trusted checkpoint "
                             "vouches for it (the verdict still says untrusted)")
    parser.add_argument("--save-checkpoints", metavar="DIR",
                        help="once the bundle is trusted, write the newest checkpoint of each of its months to "
                             "DIR/YYYY-MM.note (unless DIR holds a larger one): what to pass next time")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: all CPUs)")
    parser.add_argument("--strict-json", action="store_true", help="parse every entry as JSON (slower)")
    args = parser.parse_args(argv)
    try:
        notes = [Path(name).read_text(encoding="utf-8") for name in args.trusted_checkpoint]
        report = verify_bundle(args.bundle, keys=args.key, trusted_checkpoints=notes, witnesses=args.witness,
                               min_witnesses=args.min_witnesses, jobs=args.jobs, strict_json=args.strict_json)
        saved = save_checkpoints(report, Path(args.save_checkpoints)) if args.save_checkpoints else []
    except (AuditError, OSError, UnicodeDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    print(json.dumps(report.to_json(), indent=2) if args.json else report.render())
    if saved:
        print(f"kept {', '.join(str(path) for path in saved)}", file=sys.stderr)
    return report.exit_status(allow_untrusted=args.allow_untrusted)


def save_checkpoints(report: Report, directory: Path) -> list[Path]:
    """Write each shard's newest verified checkpoint to ``directory/YYYY-MM.note``, only from a trusted
    report (an untrusted bundle must not become next time's anchor) and never over a larger kept one."""
    if not report.trusted:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    saved = []
    for shard in report.shards:
        if shard.checkpoint is None:
            continue
        path = directory / f"{shard.shard}.note"
        if path.exists() and _note_size(path.read_text(encoding="utf-8")) > _note_size(shard.checkpoint):
            continue
        path.write_text(shard.checkpoint, encoding="utf-8")
        saved.append(path)
    return saved


def _note_size(note: str) -> int:
    lines = note.split("\n")
    return int(lines[1]) if len(lines) > 1 and lines[1].isdigit() else -1


if __name__ == "__main__":
    sys.exit(main())
