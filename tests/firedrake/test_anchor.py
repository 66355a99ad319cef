"""fe_adjoint's reference against plain firedrake.adjoint, where plain firedrake.adjoint is right.

Plain firedrake.adjoint replays a solve with the *live* value of a Constant that the
script re-assigns every step, so on the reaction-diffusion problem its gradient is wrong
even after re-evaluation; fe_adjoint's is not (checked against finite differences of
untaped runs in ``references``).
"""

import pytest

from tests.helpers import PROBLEMS, as_array, control_values, relative_error


@pytest.mark.parametrize("problem", ["heat", "burgers", "recurrence"])
def test_store_everything_reference_equals_plain_firedrake_adjoint(problem, references):
    expected = references(problem)
    taped = PROBLEMS[problem](None)
    for value, (J, dJ) in zip(control_values(taped), expected):
        assert float(taped.Jhat(value)) == pytest.approx(J, rel=1e-12)
        assert relative_error(taped.Jhat.derivative(), dJ) <= 1e-12


def test_plain_firedrake_adjoint_is_wrong_with_a_time_constant(references):
    expected = references("reaction_diffusion")
    taped = PROBLEMS["reaction_diffusion"](None)
    first = as_array(taped.Jhat.derivative()).copy()
    assert relative_error(first, expected[0][1]) > 1e-3
