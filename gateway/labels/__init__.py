"""Output labels: every edited output the proxy returns carries the implicit label of GB 45438-2025.

``aigc`` the label and its signature (what is signed), ``containers`` writes it into PNG/JPEG (XMP),
WAV/MP3 (ID3 ``TXXX:AIGC``) and MP4/M4A (``AIGC`` item), ``marks`` draws the explicit mark (image text,
audio cue), ``transform`` is the proxy's output transform that does all of it, ``service`` answers
"where does this file come from?" for the API and the CLI, and ``verifier`` is the one-file reader and
verifier that anyone can vendor (standard library and ``cryptography`` only). docs/LABELS.md has the format.

Sits beside ``gateway.proxy`` (it plugs into the proxy's output transform hook, and the proxy installs
it); may import what the proxy may. Pillow and mutagen come from the ``[labels]`` extra, imported in
``_optional`` only: without them nothing is labelled, so nothing is sent (fail closed).
"""
