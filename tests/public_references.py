"""The public reference implementations of the newer optimizers, importable.

They are test oracles only (the ``references`` extra in ``pyproject.toml``);
each importer skips the calling test when its package is missing. Two need
small shims on jax 0.10 / optax 0.2.8, kept here and nowhere else:

- psgd-jax 0.2.9 imports ``optax._src.clipping``, which optax 0.2.8 moved to
  ``optax.transforms._clipping``: the old module name is aliased.
- precondition-opt 0.3.0 calls ``jax.tree_map`` and friends, removed from
  jax's top level: :func:`jax_tree_aliases` puts them back around its use
  (and takes them away again, so no other test sees them).
"""

import contextlib
import sys

import jax
import pytest

_TREE_ALIASES = {
    "tree_map": jax.tree_util.tree_map,
    "tree_leaves": jax.tree_util.tree_leaves,
    "tree_flatten": jax.tree_util.tree_flatten,
    "tree_unflatten": jax.tree_util.tree_unflatten,
    "tree_structure": jax.tree_util.tree_structure,
}


@contextlib.contextmanager
def jax_tree_aliases():
    """``jax.tree_map`` & co. as module attributes, for precondition-opt."""
    added = [name for name in _TREE_ALIASES if not hasattr(jax, name)]
    for name in added:
        setattr(jax, name, _TREE_ALIASES[name])
    try:
        yield
    finally:
        for name in added:
            delattr(jax, name)


def torch():
    """PyTorch (CPU build, pinned beside the PyTorch-based references)."""
    return pytest.importorskip("torch")


def pytorch_optimizer():
    """pytorch-optimizer 4.1.0 (SOAP, NorMuon, Muon, MARS, LaProp, AdamP)."""
    torch()
    return pytest.importorskip("pytorch_optimizer")


def adam_mini():
    """The official Adam-mini (``adam_mini.Adam_mini``)."""
    torch()
    return pytest.importorskip("adam_mini")


def psgd_kron():
    """psgd-jax's ``kron`` module (the optax clipping module aliased first)."""
    import optax._src
    import optax.transforms._clipping as clipping

    # The alias must exist before psgd_jax is first imported (its __init__
    # imports kron, which imports the old module name).
    sys.modules.setdefault("optax._src.clipping", clipping)
    optax._src.clipping = clipping
    pytest.importorskip("psgd_jax")
    from psgd_jax import kron

    return kron


def distributed_shampoo():
    """precondition-opt's ``distributed_shampoo`` module (float32 only).

    Call its functions inside :func:`jax_tree_aliases`.
    """
    pytest.importorskip("precondition")
    from precondition import distributed_shampoo as module

    return module
