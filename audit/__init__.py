"""Tamper-evident audit log: RFC 9162 Merkle shards, C2SP checkpoints, export and offline verification."""
