"""Primitive gradient transformations, one file per family."""
