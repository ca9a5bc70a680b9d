"""Telling a mask (or labels) function from a mask tree that happens to be callable.

Masks and labels may be given as a tree or as a function of the params. Some
trees are callable objects too: an Equinox module is a pytree of its fields
*and* has ``__call__`` (optax#913). The rule, Optax's: a mask is a function
when it is callable and its tree leaves are all callable (a plain function or
``functools.partial`` is a single leaf, itself). A callable pytree whose leaves
are bools (or labels) is a tree, used as is. A callable with no leaves at all
is a tree too, as in Optax.
"""

from typing import Any

import jax


def is_mask_function(mask: Any) -> bool:
    """Whether ``mask`` is to be called on the params rather than used as a tree."""
    if not callable(mask):
        return False
    leaves = jax.tree.leaves(mask)
    return bool(leaves) and all(callable(leaf) for leaf in leaves)
