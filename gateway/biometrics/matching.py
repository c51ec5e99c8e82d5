"""Which faces no consent covers: pure functions over embeddings, no models needed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gateway.biometrics.faces import Face, distance


def nearest(face: Face, templates: Sequence[Sequence[float]]) -> float | None:
    """The distance from ``face`` to its closest template, or None when there are no templates."""
    return min((distance(face.embedding, template) for template in templates), default=None)


def unmatched(faces: Iterable[Face], templates: Sequence[Sequence[float]],
              threshold: float) -> list[tuple[Face, float | None]]:
    """The faces whose closest template is farther than ``threshold`` (all of them when there is none)."""
    found: list[tuple[Face, float | None]] = []
    for face in faces:
        closest = nearest(face, templates)
        if closest is None or closest > threshold:
            found.append((face, closest))
    return found
