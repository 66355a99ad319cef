"""Reversible time stepping: adjoints that run explicit steps backwards instead of storing them."""
