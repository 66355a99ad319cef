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


@pytest.fixture(scope="session")
def second_order_references():
    """second_order_references(problem) -> [(tlm, H d)] at the problem's control values."""
    from tests.helpers import PROBLEMS, control_values, second_order_reference

    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = second_order_reference(PROBLEMS[name], control_values)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def references():
    """reference(problem) -> [(J, dJ)] at the problem's control values, computed once."""
    from tests.helpers import PROBLEMS, control_values, reference

    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = reference(PROBLEMS[name], control_values)
        return cache[name]

    return get
