"""Per-pattern rules for Firedrake operations.

Forward replays, adjoints, tangent-linear models and second-order adjoints through forms
derived once per block pattern, and what each operation's adjoint reads.
"""
