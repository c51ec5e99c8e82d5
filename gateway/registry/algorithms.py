"""The algorithm white list: register, suspend, look up, list.

Only an algorithm registered here with status ``active`` can be named in a decision or receive media
through the proxy. Services take the session, the actor and ``now``; the caller commits.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from consent.journal import Journal, Party
from consent.operations import OPERATIONS
from consent.policy import AlgorithmView
from gateway.core.errors import GatewayError
from gateway.registry.models import ALGORITHM_ACTIVE, ALGORITHM_SUSPENDED, Algorithm

__all__ = [
    "AlgorithmNotFound",
    "AlgorithmSpec",
    "FilingNumberTaken",
    "InvalidAlgorithm",
    "RegistryError",
    "get_algorithm",
    "list_algorithms",
    "policy_view",
    "public_view",
    "register",
    "suspend",
    "view_of",
]

# Filing numbers are issued by the regulator (e.g. "网信算备110108823483901230011号"), so any
# printable text without whitespace or "/" (it is a URL path segment) is accepted; the bound keeps
# tickets and audit entries small.
_FILING_NUMBER = re.compile(r"[^\s/]{1,100}")
# An absolute http(s) URL without credentials or whitespace (IPv6 hosts in brackets); the API documents it.
UPSTREAM_URL = re.compile(r"https?://(\[[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7}\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?"
                          r"([/?#][^\s\x00]*)?")


class RegistryError(GatewayError):
    code: ClassVar[str] = "registry_error"


class InvalidAlgorithm(RegistryError):
    code = "invalid_algorithm"


class FilingNumberTaken(RegistryError):
    code = "filing_number_taken"


class AlgorithmNotFound(RegistryError):
    code = "algorithm_not_found"


@dataclass(frozen=True)
class AlgorithmSpec:
    filing_number: str
    name: str
    provider: str
    product: str
    operations: tuple[str, ...]
    upstream_url: str


def get_algorithm(session: Session, filing_number: str) -> Algorithm | None:
    """The registered algorithm with this filing number, whatever its status, or None."""
    return session.scalars(select(Algorithm).where(Algorithm.filing_number == filing_number)).first()


def list_algorithms(session: Session, *, include_suspended: bool = True) -> list[Algorithm]:
    query = select(Algorithm).order_by(Algorithm.created_at, Algorithm.id)
    if not include_suspended:
        query = query.where(Algorithm.status == ALGORITHM_ACTIVE)
    return list(session.scalars(query))


def register(session: Session, spec: AlgorithmSpec, *, actor: Party, journal: Journal, now: datetime) -> Algorithm:
    """Add an algorithm to the white list (active at once) and audit it."""
    operations = _validated(spec)
    if get_algorithm(session, spec.filing_number) is not None:
        raise FilingNumberTaken(f"filing number {spec.filing_number!r} is already registered")
    row = Algorithm(
        filing_number=spec.filing_number,
        name=spec.name.strip(),
        provider=spec.provider.strip(),
        product=spec.product.strip(),
        operations=operations,
        upstream_url=spec.upstream_url,
        status=ALGORITHM_ACTIVE,
        created_at=now,
    )
    try:
        # A savepoint, so a concurrent registration of the same number surfaces as a clean 409
        # instead of poisoning the caller's whole transaction.
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        raise FilingNumberTaken(f"filing number {spec.filing_number!r} is already registered") from exc
    journal.record("algorithm.registered", actor, algorithm=row.filing_number,
                   detail={"name": row.name, "provider": row.provider, "product": row.product,
                           "operations": operations, "upstream_url": row.upstream_url})
    return row


def suspend(session: Session, filing_number: str, *, actor: Party, journal: Journal, now: datetime) -> Algorithm:
    """Take an algorithm off the white list; decisions naming it are denied from the next commit on.

    Suspending a suspended algorithm changes nothing and writes no second audit entry.
    """
    row = get_algorithm(session, filing_number)
    if row is None:
        raise AlgorithmNotFound(f"no algorithm has filing number {filing_number!r}")
    if row.status != ALGORITHM_SUSPENDED:
        row.status = ALGORITHM_SUSPENDED
        row.suspended_at = now
        journal.record("algorithm.suspended", actor, algorithm=row.filing_number)
    return row


def public_view(row: Algorithm) -> dict[str, Any]:
    """What anyone may read about an algorithm: never its upstream URL."""
    return {
        "filing_number": row.filing_number,
        "name": row.name,
        "provider": row.provider,
        "product": row.product,
        "operations": list(row.operations),
        "status": row.status,
    }


def policy_view(row: Algorithm | None) -> AlgorithmView | None:
    if row is None:
        return None
    return view_of(row.filing_number, row.status, row.operations)


def view_of(filing_number: str, status: str, operations: object) -> AlgorithmView:
    """The policy's view of a registered algorithm from its stored columns (an ORM row or a Core read)."""
    names = operations if isinstance(operations, list) else []
    # A value that is not a list of names is unreadable state: the view then permits no operation.
    return AlgorithmView(
        filing_number=filing_number,
        status=status,
        operations=frozenset(op for op in names if isinstance(op, str)),
    )


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _reachable_host(hostname: str) -> bool:
    """An IP address, or a DNS name whose labels are 1 to 63 letters, digits and inner hyphens."""
    try:
        ipaddress.ip_address(hostname)
        return True
    except ValueError:
        pass
    labels = hostname.removesuffix(".").split(".")
    return len(hostname) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)


def _validated(spec: AlgorithmSpec) -> list[str]:
    """The spec's operations in catalogue order, or InvalidAlgorithm naming what is wrong."""
    if not _FILING_NUMBER.fullmatch(spec.filing_number):
        raise InvalidAlgorithm("a filing number is 1 to 100 characters without whitespace or '/'")
    for what, value in (("name", spec.name), ("provider", spec.provider), ("product", spec.product)):
        if not value.strip() or len(value) > 200:
            raise InvalidAlgorithm(f"{what} must be 1 to 200 characters")
    if not spec.operations:
        raise InvalidAlgorithm("an algorithm performs at least one operation")
    unknown = [name for name in spec.operations if name not in OPERATIONS]
    if unknown:
        raise InvalidAlgorithm(f"unknown operation(s) {', '.join(unknown)}; known: {', '.join(OPERATIONS)}")
    try:
        parts = urlsplit(spec.upstream_url)
        hostname = parts.hostname
    except ValueError:  # e.g. a bracketed host that is no IP address
        raise InvalidAlgorithm("the upstream URL must be an absolute http(s) URL") from None
    if parts.username or parts.password:
        # Credentials in a URL end up in logs and audit entries; upstreams authenticate the ticket.
        raise InvalidAlgorithm("the upstream URL must not carry credentials")
    if not UPSTREAM_URL.fullmatch(spec.upstream_url) or not hostname:
        raise InvalidAlgorithm("the upstream URL must be an absolute http(s) URL")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0 or not _reachable_host(hostname):
        # Refused here rather than at the first edit, which would take a use for a call that cannot be made.
        raise InvalidAlgorithm("the upstream URL needs a valid host name or IP address and a port from 1 to 65535")
    # Catalogue order, like consent records, so the same set always reads the same way.
    return [name for name in OPERATIONS if name in set(spec.operations)]
