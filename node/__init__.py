"""Archipel: a federated node for a local commons chamber."""

__version__ = "0.1.0"
