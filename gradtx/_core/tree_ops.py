"""Tree utilities: arithmetic, norms, casting and state access on pytrees.

The same names as ``optax.tree``: ``gradtx.tree.add(x, y)``,
``gradtx.tree.norm(grads)``, ``gradtx.tree.get(state, "count")``, … Leaves that
are ``None`` are empty subtrees and are skipped, as in every JAX tree map.
"""

import builtins
import functools
import operator
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp

from . import maths as _maths
from .lifting import drop_where_none
from .lifting import tree_cast as cast
from .lifting import tree_cast_like as cast_like
from .lifting import tree_full_like as full_like
from .lifting import tree_zeros_like as zeros_like
from .moments import (
    bias_correction,
    update_infinity_moment,
    update_moment,
    update_moment_per_elem_norm,
)
from .placement import auto_axes
from .state_paths import NamedTupleKey, get, get_all_with_path, map_params, set

__all__ = [
    "NamedTupleKey", "add", "add_scale", "allclose", "batch_shape",
    "bias_correction", "cast", "cast_like", "clip", "conj", "div", "dtype",
    "full_like", "get", "get_all_with_path", "map_params", "max", "min", "mul",
    "norm", "ones_like", "random_like", "real", "scale", "set", "size",
    "split_key_like", "sub", "sum", "unwrap_random_key_data",
    "update_infinity_moment", "update_moment", "update_moment_per_elem_norm",
    "vdot", "where", "zeros_like",
]  # fmt: skip


def add(tree_x: Any, tree_y: Any, *other_trees: Any) -> Any:
    """Leaf-wise sum of two or more trees of the same structure.

    A ``None`` leaf of ``tree_x`` stays ``None`` whatever the other trees hold
    there (as ``add_scale`` and ``apply_updates``).
    """
    others = [
        drop_where_none(tree_x, t, name=f"tree {i}", owner="tree.add", ref="tree_x")
        for i, t in enumerate((tree_y, *other_trees), start=1)
    ]
    return jax.tree.map(lambda *xs: functools.reduce(operator.add, xs), tree_x,
                        *others)  # fmt: skip


def sub(tree_x: Any, tree_y: Any) -> Any:
    """Leaf-wise difference ``x − y``."""
    return jax.tree.map(operator.sub, tree_x, tree_y)


def mul(tree_x: Any, tree_y: Any) -> Any:
    """Leaf-wise product ``x · y``."""
    return jax.tree.map(operator.mul, tree_x, tree_y)


def div(tree_x: Any, tree_y: Any) -> Any:
    """Leaf-wise quotient ``x / y``."""
    return jax.tree.map(operator.truediv, tree_x, tree_y)


def scale(scalar: chex.Numeric, tree: Any) -> Any:
    """Every leaf multiplied by ``scalar``."""
    return jax.tree.map(lambda x: scalar * x, tree)


def add_scale(tree_x: Any, scalar: chex.Numeric, tree_y: Any) -> Any:
    """``x + scalar · y``, leaf by leaf.

    A ``None`` leaf of ``tree_x`` stays ``None`` whatever ``tree_y`` holds
    there (as in Optax).
    """
    tree_y = drop_where_none(
        tree_x, tree_y, name="tree_y", owner="tree.add_scale", ref="tree_x"
    )
    return jax.tree.map(lambda x, y: x + scalar * y, tree_x, tree_y)


def _vdot(x: Any, y: Any) -> chex.Array:
    return jnp.vdot(x, y, precision=jax.lax.Precision.HIGHEST)


def vdot(tree_x: Any, tree_y: Any) -> chex.Array:
    """The inner product ``Σ conj(x)·y`` over all leaves (at full precision)."""
    dots = [
        auto_axes(_vdot, x, y)  # Explicit axes: a contraction over split dims
        for x, y in zip(jax.tree.leaves(tree_x), jax.tree.leaves(tree_y), strict=True)
    ]
    return functools.reduce(operator.add, dots, jnp.zeros(()))


def sum(tree: Any, associative_reduction: bool = False) -> chex.Array:
    """The sum of every element of every leaf.

    ``associative_reduction`` sums the per-leaf sums pairwise (a balanced tree
    of additions, shallower for many leaves) instead of left to right.
    """
    sums = [jnp.sum(x) for x in jax.tree.leaves(tree)]
    if not sums:
        return jnp.zeros(())
    if associative_reduction:
        while len(sums) > 1:
            pairs = [a + b for a, b in zip(sums[::2], sums[1::2], strict=False)]
            sums = pairs + (sums[-1:] if len(sums) % 2 else [])
        return sums[0]
    return functools.reduce(operator.add, sums)


def max(tree: Any) -> chex.Array:
    """The largest element over all leaves (``-inf`` for an empty tree)."""
    leaves = [jnp.max(x) for x in jax.tree.leaves(tree) if jnp.size(x)]
    return functools.reduce(jnp.maximum, leaves, jnp.asarray(-jnp.inf))


def min(tree: Any) -> chex.Array:
    """The smallest element over all leaves (``inf`` for an empty tree)."""
    leaves = [jnp.min(x) for x in jax.tree.leaves(tree) if jnp.size(x)]
    return functools.reduce(jnp.minimum, leaves, jnp.asarray(jnp.inf))


def size(tree: Any) -> int:
    """The number of elements over all leaves."""
    return builtins.sum(int(jnp.size(x)) for x in jax.tree.leaves(tree))


def norm(
    tree: Any, ord: int | str | float | None = None, squared: bool = False
) -> chex.Array:
    """The norm of all leaves taken together: 2 (default), 1 or ``inf``.

    With ``squared`` the 2-norm is returned squared (no square root taken), and
    the 1- and inf-norms are squared.
    """
    leaves = [_maths.abs_sq(jnp.asarray(x)) if ord in (None, 2) else jnp.abs(x)
              for x in jax.tree.leaves(tree)]  # fmt: skip
    if ord in (None, 2):
        total = sum(leaves)
        return total if squared else jnp.sqrt(total)
    if ord == 1:
        value = sum(leaves)
    elif ord in (jnp.inf, "inf", "infinity"):
        value = max(leaves) if leaves else jnp.zeros(())
    else:
        raise ValueError(f"norm: `ord` must be None, 1, 2 or inf, got {ord!r}.")
    return value * value if squared else value


def where(condition: Any, tree_x: Any, tree_y: Any) -> Any:
    """``x`` where ``condition`` holds, else ``y``, leaf by leaf."""
    return jax.tree.map(lambda x, y: jnp.where(condition, x, y), tree_x, tree_y)


def clip(tree: Any, min_value: chex.Numeric | None = None,
         max_value: chex.Numeric | None = None) -> Any:  # fmt: skip
    """Every leaf clipped to ``[min_value, max_value]`` (``None``: unbounded)."""
    return jax.tree.map(lambda x: jnp.clip(x, min_value, max_value), tree)


def conj(tree: Any) -> Any:
    """The complex conjugate of every leaf."""
    return jax.tree.map(jnp.conj, tree)


def real(tree: Any) -> Any:
    """The real part of every leaf."""
    return jax.tree.map(jnp.real, tree)


def ones_like(tree: Any, dtype: Any = None) -> Any:
    """Ones shaped (and sharded) like every leaf (dtype: the leaf's, or ``dtype``)."""
    return full_like(tree, 1, dtype=dtype)


def allclose(a: Any, b: Any, rtol: chex.Numeric = 1e-05, atol: chex.Numeric = 1e-08,
             equal_nan: bool = False) -> chex.Array:  # fmt: skip
    """Whether every pair of leaves is close (``jnp.allclose`` on each)."""
    close = jax.tree.map(
        lambda x, y: jnp.allclose(x, y, rtol=rtol, atol=atol, equal_nan=equal_nan), a, b
    )
    return functools.reduce(jnp.logical_and, jax.tree.leaves(close), jnp.asarray(True))


def batch_shape(tree: Any, shape: tuple[int, ...] = ()) -> Any:
    """Every leaf broadcast to ``(*shape, *leaf.shape)``."""
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (*shape, *jnp.shape(x))), tree)


def dtype(tree: Any, mixed_dtype_handler: str | None = None) -> Any:
    """The dtype of the leaves of ``tree``.

    Args:
      tree: the tree (an empty tree gives JAX's default float dtype).
      mixed_dtype_handler: with leaves of several dtypes, ``None`` raises,
        ``"promote"`` returns their promoted dtype, ``"highest"`` /
        ``"lowest"`` the one every other promotes to / from (raising when the
        dtypes are not ordered by promotion).
    """
    dtypes = list(dict.fromkeys(jnp.result_type(x) for x in jax.tree.leaves(tree)))
    if not dtypes:
        return jnp.asarray(0.0).dtype
    if len(dtypes) == 1:
        return dtypes[0]
    if mixed_dtype_handler is None:
        raise ValueError(
            f"dtype: the tree has leaves of several dtypes {dtypes}; pass "
            "mixed_dtype_handler='promote', 'highest' or 'lowest'."
        )
    if mixed_dtype_handler == "promote":
        return functools.reduce(jnp.promote_types, dtypes)
    if mixed_dtype_handler not in ("highest", "lowest"):
        raise ValueError(
            "dtype: `mixed_dtype_handler` must be None, 'promote', 'highest' or "
            f"'lowest', got {mixed_dtype_handler!r}."
        )
    promoted = functools.reduce(jnp.promote_types, dtypes)
    if mixed_dtype_handler == "highest":
        if promoted not in dtypes:
            raise ValueError(f"dtype: no highest dtype among {dtypes}.")
        return promoted
    lowest = [d for d in dtypes if all(jnp.promote_types(d, e) == e for e in dtypes)]
    if not lowest:
        raise ValueError(f"dtype: no lowest dtype among {dtypes}.")
    return lowest[0]


def split_key_like(rng_key: chex.PRNGKey, target_tree: Any) -> Any:
    """One independent key per leaf of ``target_tree``, in a tree of its shape."""
    treedef = jax.tree.structure(target_tree)
    keys = jax.random.split(rng_key, treedef.num_leaves)
    return jax.tree.unflatten(treedef, list(keys))


def random_like(
    rng_key: chex.PRNGKey,
    target_tree: Any,
    sampler: Callable[..., chex.Array] = jax.random.normal,
    dtype: Any = None,
) -> Any:
    """Random leaves shaped like ``target_tree``: ``sampler(key, shape, dtype)``."""
    keys = split_key_like(rng_key, target_tree)
    return jax.tree.map(
        lambda x, k: sampler(k, jnp.shape(x), dtype or jnp.result_type(x)),
        target_tree,
        keys,
    )


def unwrap_random_key_data(input_tree: Any) -> Any:
    """Typed PRNG keys replaced by their raw ``uint32`` data (for checkpoints)."""

    def unwrap(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(
            x.dtype, jax.dtypes.prng_key
        ):
            return jax.random.key_data(x)
        return x

    return jax.tree.map(unwrap, input_tree)
