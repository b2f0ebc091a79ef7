"""Formulation blocks: each adds one part of the model (network, DER, PCC, DC-OPF, KKT, ...) to a Pyomo block."""
