"""The core: the protocol, lifting per-array maths to trees, per-array maths,
validation and placement. Imports nothing else from gradtx.
"""
