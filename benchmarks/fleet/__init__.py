"""Federated heads over simulated devices, against the alternatives."""
