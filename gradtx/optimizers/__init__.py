"""Optimizers: the aliases, each a ``chain`` of primitives; a module per family,
named like the transforms module it builds on.
"""
