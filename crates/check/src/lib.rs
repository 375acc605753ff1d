//! Independent checkers: linearizability, convergence.
