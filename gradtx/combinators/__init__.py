"""Combinators: structure over transformations (chain, named_chain, masked,
partition, freeze, flatten). They need only the core.
"""
