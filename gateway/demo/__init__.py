"""The click-through demo: a pretend app, the reference upstream and its media edits (``[demo]`` extra).

Nothing in the gateway imports this package; only the demo needs Pillow.
"""

# The filing number the demo registers the reference upstream under.
DEMO_FILING_NUMBER = "DEMO-0001"
