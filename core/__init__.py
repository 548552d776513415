"""The bottom layer: what every other package shares and nothing above it is needed for.

``types`` (Document, Chunk, Hit), ``errors``, ``config`` (Settings), ``storage`` (atomic writes, safe file
names), ``citations`` ([n] markers), ``embedding/`` (text -> vectors) and ``collection/`` (a collection on
disk). It imports nothing from the packages above it (pyproject.toml's import-linter contract).
"""
