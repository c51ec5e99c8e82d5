"""Witnesses (https://c2sp.org/tlog-witness): what the log sends them, and what it keeps of their answers.

A witness cosigns a checkpoint once it has checked, with a consistency proof, that the checkpoint extends
the last one it cosigned for that origin (each month's shard is its own origin). The transport (HTTP, in
the background, never on the path of an append) is the gateway's; this module decides what to submit,
formats the ``add-checkpoint`` body, and verifies and stores the cosignatures that come back.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit import proofs, signed_note
from audit.errors import AuditError
from audit.models import Checkpoint, Shard, WitnessCosignature

# A witness is asked about the newest checkpoints of this many recent months at most per pass, so that
# one that was unreachable for long catches up from the present backwards.
RECENT_SHARDS = 3


class WitnessRefused(AuditError):
    """A witness answered something other than cosignatures it could be held to."""

    code = "witness_refused"


@dataclass(frozen=True)
class Witness:
    """A configured witness: its submission prefix (URL) and its cosigning key."""

    url: str
    vkey: str

    @property
    def cosigner(self) -> signed_note.Cosigner:
        return signed_note.parse_cosigner_vkey(self.vkey)

    @property
    def id(self) -> str:
        """``name+hexid``: how cosignatures are filed."""
        cosigner = self.cosigner
        return f"{cosigner.name}+{cosigner.key_id:08x}"

    @property
    def endpoint(self) -> str:
        return self.url.rstrip("/") + "/add-checkpoint"


@dataclass(frozen=True)
class Submission:
    shard: str
    size: int
    note: str
    old_size: int
    body: bytes


def request_body(old_size: int, proof: list[bytes], note: str) -> bytes:
    """The ``add-checkpoint`` body: ``old N``, the proof's hashes, an empty line, the checkpoint note."""
    lines = [f"old {old_size}", *(base64.b64encode(h).decode() for h in proof), ""]
    return ("".join(f"{line}\n" for line in lines) + note).encode()


def pending(session: Session, witness: Witness, shards: list[str] | None = None) -> list[Submission]:
    """The newest checkpoint of each recent (or each named) shard that ``witness`` has not cosigned yet."""
    newest = (select(Checkpoint.shard, func.max(Checkpoint.size)).join(Shard, Shard.shard == Checkpoint.shard)
              .where(Shard.status != "purged").group_by(Checkpoint.shard).order_by(Checkpoint.shard.desc()))
    newest = newest.where(Checkpoint.shard.in_(shards)) if shards is not None else newest.limit(RECENT_SHARDS)
    submissions = []
    for shard, size in session.execute(newest).all():
        cosigned = session.scalar(select(func.max(WitnessCosignature.size)).where(
            WitnessCosignature.shard == shard, WitnessCosignature.witness == witness.id))
        if cosigned is not None and cosigned >= size:
            continue
        submissions.append(submission(session, shard, size, cosigned or 0))
    return submissions


def submission(session: Session, shard: str, size: int, old_size: int) -> Submission:
    """What to send to move a witness from ``old_size`` (what it last cosigned) to the checkpoint at ``size``."""
    note = session.scalars(select(Checkpoint.note).where(Checkpoint.shard == shard, Checkpoint.size == size)).one()
    proof = proofs.consistency(session, shard, old_size, size) if 0 < old_size < size else []
    return Submission(shard=shard, size=size, note=note, old_size=old_size,
                      body=request_body(old_size, proof, note))


def parse_size(text: str) -> int:
    """The body of a 409 answer (``text/x.tlog.size``): the size the witness last cosigned."""
    if not text.endswith("\n") or not text[:-1].isdigit():
        raise WitnessRefused(f"a witness's conflict answer is not a tree size: {text[:40]!r}")
    return int(text[:-1])


def record(session: Session, witness: Witness, submitted: Submission, answer: str,
           now: datetime) -> signed_note.Cosignature:
    """Verify the witness's answer against the submitted checkpoint and store its cosignature."""
    try:
        lines = signed_note.signature_lines(answer)
        found = signed_note.cosignatures(submitted.note + "".join(lines), [witness.cosigner])
    except AuditError as exc:
        raise WitnessRefused(f"{witness.id} answered with no usable cosignature: {exc}") from exc
    if not found:
        raise WitnessRefused(f"{witness.id} answered without a cosignature by its key")
    cosignature = found[0]
    if session.get(WitnessCosignature, (submitted.shard, submitted.size, witness.id)) is None:
        session.add(WitnessCosignature(
            shard=submitted.shard, size=submitted.size, witness=witness.id, line=cosignature.line,
            cosigned_at=datetime.fromtimestamp(cosignature.timestamp, UTC), created_at=now))
    return cosignature


def cosignature_lines(session: Session, shard: str, sizes: list[int] | None = None) -> dict[int, str]:
    """The stored cosignature lines of a shard's checkpoints, by size (all, or those at ``sizes``)."""
    query = select(WitnessCosignature.size, WitnessCosignature.line).where(WitnessCosignature.shard == shard)
    if sizes is not None:
        query = query.where(WitnessCosignature.size.in_(sizes))
    lines: dict[int, str] = {}
    for size, line in session.execute(query.order_by(WitnessCosignature.size, WitnessCosignature.witness)):
        lines[size] = lines.get(size, "") + line
    return lines


def with_cosignatures(session: Session, checkpoint: Checkpoint) -> str:
    """The checkpoint's note with the witnesses' cosignature lines appended (a valid signed note)."""
    return checkpoint.note + cosignature_lines(session, checkpoint.shard, [checkpoint.size]).get(checkpoint.size, "")


def newest_cosigned(session: Session, shard: str) -> int | None:
    """The largest size of the shard that some witness cosigned."""
    return session.scalar(select(func.max(WitnessCosignature.size)).where(WitnessCosignature.shard == shard))
