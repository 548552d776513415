"""Arithmetic in code: a small language over table cells (program.py), the planner that writes programs for
common question shapes (planner.py), and the computation an answer shows (computation.py)."""
