"""Tree utilities: the ``optax.tree`` namespace.

Arithmetic, norms, casting and state access on pytrees, with the same names
and signatures as ``optax.tree``: ``gradtx.tree.add(x, y)``,
``gradtx.tree.norm(grads)``, ``gradtx.tree.get(state, "count")``, …
"""

from ._core.tree_ops import NamedTupleKey as NamedTupleKey
from ._core.tree_ops import add as add
from ._core.tree_ops import add_scale as add_scale
from ._core.tree_ops import allclose as allclose
from ._core.tree_ops import batch_shape as batch_shape
from ._core.tree_ops import bias_correction as bias_correction
from ._core.tree_ops import cast as cast
from ._core.tree_ops import cast_like as cast_like
from ._core.tree_ops import clip as clip
from ._core.tree_ops import conj as conj
from ._core.tree_ops import div as div
from ._core.tree_ops import dtype as dtype
from ._core.tree_ops import full_like as full_like
from ._core.tree_ops import get as get
from ._core.tree_ops import get_all_with_path as get_all_with_path
from ._core.tree_ops import map_params as map_params
from ._core.tree_ops import max as max
from ._core.tree_ops import min as min
from ._core.tree_ops import mul as mul
from ._core.tree_ops import norm as norm
from ._core.tree_ops import ones_like as ones_like
from ._core.tree_ops import random_like as random_like
from ._core.tree_ops import real as real
from ._core.tree_ops import scale as scale
from ._core.tree_ops import set as set
from ._core.tree_ops import size as size
from ._core.tree_ops import split_key_like as split_key_like
from ._core.tree_ops import sub as sub
from ._core.tree_ops import sum as sum
from ._core.tree_ops import unwrap_random_key_data as unwrap_random_key_data
from ._core.tree_ops import update_infinity_moment as update_infinity_moment
from ._core.tree_ops import update_moment as update_moment
from ._core.tree_ops import update_moment_per_elem_norm as update_moment_per_elem_norm
from ._core.tree_ops import vdot as vdot
from ._core.tree_ops import where as where
from ._core.tree_ops import zeros_like as zeros_like

__all__ = [
    "NamedTupleKey",
    "add",
    "add_scale",
    "allclose",
    "batch_shape",
    "bias_correction",
    "cast",
    "cast_like",
    "clip",
    "conj",
    "div",
    "dtype",
    "full_like",
    "get",
    "get_all_with_path",
    "map_params",
    "max",
    "min",
    "mul",
    "norm",
    "ones_like",
    "random_like",
    "real",
    "scale",
    "set",
    "size",
    "split_key_like",
    "sub",
    "sum",
    "unwrap_random_key_data",
    "update_infinity_moment",
    "update_moment",
    "update_moment_per_elem_norm",
    "vdot",
    "where",
    "zeros_like",
]
