"""Why an output was not labelled. Each is a refusal of the upstream's answer: the app gets a 502.

They are :class:`gateway.proxy.upstream.OutputRefused` errors, so the proxy records the edit as
``failed`` with the code as its reason and answers like any other upstream failure (with the decision).
"""

from __future__ import annotations

from gateway.proxy.upstream import OutputRefused


class LabelRefused(OutputRefused):
    """The output could not be labelled (unreadable, too large, no room to spool it, signing failed)."""

    code = "label_failed"


class LabelUnsupported(LabelRefused):
    """A format the gateway cannot label (or mark): refused unless LABEL_UNSUPPORTED is ``pass``."""

    code = "label_unsupported"


class LabelUnavailable(LabelRefused):
    """The labelling code for this format is not installed (the ``[labels]`` extra)."""

    code = "label_unavailable"
