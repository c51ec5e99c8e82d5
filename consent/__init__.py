"""Consent domain: records, their signatures, the operation catalogue and the decision policy.

Plain Python only. This package never imports Flask, ``gateway`` or ``audit``; ``gateway`` composes it.
"""
