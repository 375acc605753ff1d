//! Clocks for distributed knowledge: Lamport, vector, version vectors, dots, hybrid logical clocks.
