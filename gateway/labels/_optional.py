"""The ``[labels]`` extra (Pillow, mutagen), imported here and only here, lazily.

A missing one raises :class:`~gateway.labels.errors.LabelUnavailable`, which the proxy turns into a
refusal (502 ``label_unavailable``): an output that cannot be labelled is not sent.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from gateway.labels.errors import LabelUnavailable

_EXTRA = "install the gateway with its [labels] extra (pip install 'biometric-consent-gateway[labels]')"


def import_optional(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise LabelUnavailable(f"{name.split('.', maxsplit=1)[0]} is not installed, so this output cannot be labelled; "
                               f"{_EXTRA}") from exc


def available(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True
