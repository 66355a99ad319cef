"""Second-order passes: collapsed Taylor-mode propagation and Hessian traces."""
