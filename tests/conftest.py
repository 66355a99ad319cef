"""Shared fixtures: a seeded random generator for every test."""

import sys

import numpy as np
import pytest


def pytest_configure(config):
    """Keep pytest's own options out of PETSc's options database (Firedrake reads sys.argv)."""
    del sys.argv[1:]


@pytest.fixture(autouse=True)
def rng():
    """A NumPy generator seeded per test."""
    return np.random.default_rng(20261122)
