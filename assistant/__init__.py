"""Domain assistant for medical and finance questions.

The bottom layer (``types``, ``errors``, ``config``, ``embedding``, ``collection``) is shared by every
component package; ``cli`` (and later ``pipeline``) sit on top. See docs/architecture.md.
"""

__version__ = "0.1.0"
