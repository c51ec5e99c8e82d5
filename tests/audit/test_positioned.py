"""The sequencer's fast JCS splice gives exactly the bytes rfc8785 would, whatever the entry holds."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import rfc8785

from audit.sequencer import positioned

CASES: list[dict[str, Any]] = [
    {},
    {"action": "a"},
    {"zzz": 1},
    {"action": "decision.allowed", "actor": {"id": "cli_1", "type": "client"}, "subject": "sub_1",
     "ts": "2026-11-03T10:00:00.000000Z"},
    # The member after the insertion point also appears, earlier, inside a nested object.
    {"action": "x", "detail": {"a": 1, "subject": "nested", "ts": "nested"}, "subject": "sub_1", "ts": "t"},
    {"detail": {"subject": {"subject": 1}}, "subject": [{"subject": 2}]},
    # Strings that look like members.
    {"action": ',"subject":1', "note": '{"seq":5,"shard":"x"}', "subject": "s", "ts": "t"},
    # Member names sorting between "seq" and "shard", or beyond ASCII: the slow path must take them.
    {"action": "x", "server": 1, "ts": "t"},
    {"action": "x", "seqz": 1},
    {"action": "x", "sh": True},
    {"action": "x", "\u00e9t\u00e9": 1, "ts": "t"},
    {"action": "x", "\U0001f600": 1, "\ufb01": 2},
    {"a": 1.5, "b": None, "c": [1, "2", {"d": False}], "u": "\u2028\u00e9\U0001f600", "ts": "t"},
    {"first": "only member after the position is the first member: none", "t": 1},
    {"ta": 1, "tb": 2},
]


@pytest.mark.parametrize("body", CASES)
def test_splice_equals_rfc8785(body: dict[str, Any]) -> None:
    queued = rfc8785.dumps(body)
    expected = rfc8785.dumps({**body, "shard": "2026-11", "seq": 123})
    entry = dict(body)
    assert positioned(entry, "2026-11", 123, queued) == expected
    assert positioned(dict(body), "2026-11", 123) == expected
    assert entry == json.loads(expected)


def test_splice_equals_rfc8785_on_random_entries() -> None:
    rng = random.Random(9162)
    names = ["action", "actor", "algorithm", "client_id", "consent_id", "decision_id", "detail", "media",
             "operation", "outcome", "reason", "request_id", "subject", "ts", "s", "sa", "sz", "t", "z"]

    def value(depth: int) -> Any:
        kind = rng.randrange(6 if depth < 3 else 4)
        if kind == 0:
            return rng.choice(["", "x", "subject", ',"ts":', "\u00e9\n\"\\", "2026-11-03T10:00:00Z"])
        if kind == 1:
            return rng.randrange(-(10**6), 10**6)
        if kind == 2:
            return rng.choice([True, False, None])
        if kind == 3:
            return rng.random() * 1000
        if kind == 4:
            return [value(depth + 1) for _ in range(rng.randrange(3))]
        return {rng.choice(names): value(depth + 1) for _ in range(rng.randrange(4))}

    for seq in range(3000):
        body = {rng.choice(names): value(0) for _ in range(rng.randrange(8))}
        expected = rfc8785.dumps({**body, "shard": "2027-01", "seq": seq})
        assert positioned(dict(body), "2027-01", seq, rfc8785.dumps(body)) == expected, body
