"""The top layer of the assistant itself: ``compose`` (Settings -> components, one factory per thing),
``pipeline`` (``Assistant``: the one way in for every front end), ``views`` (one JSON shape per object) and
``uploads``. The front ends (api/, ui/, eval/) and the command line (cli/) sit above it; the components and
core/ below. See docs/architecture.md.
"""

__version__ = "0.1.0"
