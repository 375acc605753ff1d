//! A deterministic discrete-event simulator for sans-IO distributed protocols.
