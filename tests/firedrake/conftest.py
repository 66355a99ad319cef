"""Firedrake tests: a fresh tape around every test, references computed once per problem."""

import gc

import pytest


@pytest.fixture(autouse=True)
def fresh_tape():
    from firedrake.adjoint import Tape, get_working_tape, pause_annotation, set_working_tape

    set_working_tape(Tape())
    yield
    pause_annotation()
    get_working_tape().clear_tape()
    set_working_tape(Tape())
    gc.collect()


def _cached_per_problem(reference):
    from tests.helpers import PROBLEMS, control_values

    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = reference(PROBLEMS[name], control_values)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def second_order_references():
    """second_order_references(problem) -> [(tlm, H d)] at the problem's control values."""
    from tests.helpers import second_order_reference

    return _cached_per_problem(second_order_reference)


@pytest.fixture(scope="session")
def references():
    """references(problem) -> [(J, dJ)] at the problem's control values, computed once."""
    from tests.helpers import reference

    return _cached_per_problem(reference)
