"""The click-through demo: a pretend app, the reference upstream and its media edits (``[demo]`` extra).

Nothing in the gateway imports this package; only the demo needs Pillow.
"""

from pathlib import Path

# The filing number the demo registers the reference upstream under.
DEMO_FILING_NUMBER = "DEMO-0001"

# Real photos (faces/README.md: source and licence), because face binding is on by default and a drawn
# face is found by no detector. A path, not importlib.resources: the newcomer is told which file to
# upload, so it must be a file on disk, which it is in a checkout and in an installed wheel alike.
PHOTOS = Path(__file__).with_name("faces")
PERSON_A_SELFIE = PHOTOS / "person_a_selfie.jpg"  # uploaded on the consent screen
PERSON_A_ANOTHER_PHOTO = PHOTOS / "person_a_another_photo.jpg"  # the same face, another photograph
PERSON_B = PHOTOS / "person_b.jpg"  # someone who never consented
