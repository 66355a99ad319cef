"""A pointwise affine assignment run backwards: ``u.assign(u + dt * w)`` gives ``u`` before.

A Störmer-Verlet step updates its position as ``u.assign(u + dt * v_half)``. With the
output known and exactly one input ``t`` unknown, an expression affine in ``t`` with a
coefficient ``a`` free of ``t`` gives ``t = (out - expr|_(t=0)) / a`` node by node. Only
scalar spaces: a vector-valued expression may mix components, which this rule does not
look for.
"""

from __future__ import annotations

from .solve_inverse import refusal


def affine_input(block, known):
    """The one unknown input ``block`` (an assignment) gives back, or None."""
    from firedrake import Function

    out = block.get_outputs()[0].output
    unknown = [bv for bv in block.get_dependencies() if bv not in known]
    if block.expr is None or len(unknown) != 1 or not isinstance(out, Function):
        return None
    target = unknown[0].output
    if not isinstance(target, Function) or target.function_space() != out.function_space() \
            or out.function_space().value_size != 1:
        return None
    return unknown[0] if _coefficient(block.expr, target) is not None else None


def _coefficient(expr, target):
    """``d expr / d target`` (times a Function of ones) if free of ``target``, else None."""
    import ufl
    from firedrake import Function
    from ufl.algorithms import expand_derivatives, extract_coefficients

    one = Function(target.function_space()).assign(1.0)
    derivative = expand_derivatives(ufl.derivative(expr, target, one))
    return None if target in extract_coefficients(derivative) else derivative


def run_assign_backwards(block, target, value_of):
    """Input ``target``'s value before ``block`` ran, from the output's and the others'."""
    import ufl
    from firedrake import Function
    from mpi4py import MPI
    from pyadjoint import stop_annotating

    V = target.output.function_space()
    values = {bv.output: value_of(bv) for bv in block.get_dependencies() if bv is not target}
    values[target.output] = Function(V)  # zero
    with stop_annotating():
        rest = Function(V).interpolate(ufl.replace(block.expr, values))
        scale = Function(V).interpolate(
            ufl.replace(_coefficient(block.expr, target.output), values))
    a = scale.dat.data_ro
    if V.comm.allreduce(not a.all(), op=MPI.LOR):
        raise refusal(block, f"its coefficient of {target.output} has a zero")
    result = Function(V)
    result.dat.data[:] = (value_of(block.get_outputs()[0]).dat.data_ro - rest.dat.data_ro) / a
    return result
