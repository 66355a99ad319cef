"""Per-pattern rules for Firedrake operations.

Forward replays and adjoints through forms derived once per block pattern, and what
each operation's adjoint reads.
"""
