"""Tree utilities under their ``optax.tree_utils`` names.

``optax.tree_utils`` spells every function of ``optax.tree`` with a ``tree_``
prefix (``tree_add``, ``tree_norm``, ``tree_get``, …) and adds
``NamedTupleKey``. This module is that namespace: each name is the very
function of :mod:`gradtx.tree` (no second implementation), so
``gradtx.tree_utils.tree_add is gradtx.tree.add``.
"""

from ._core.tree_ops import NamedTupleKey
from ._core.tree_ops import add as tree_add
from ._core.tree_ops import add_scale as tree_add_scale
from ._core.tree_ops import allclose as tree_allclose
from ._core.tree_ops import batch_shape as tree_batch_shape
from ._core.tree_ops import bias_correction as tree_bias_correction
from ._core.tree_ops import cast as tree_cast
from ._core.tree_ops import cast_like as tree_cast_like
from ._core.tree_ops import clip as tree_clip
from ._core.tree_ops import conj as tree_conj
from ._core.tree_ops import div as tree_div
from ._core.tree_ops import dtype as tree_dtype
from ._core.tree_ops import full_like as tree_full_like
from ._core.tree_ops import get as tree_get
from ._core.tree_ops import get_all_with_path as tree_get_all_with_path
from ._core.tree_ops import map_params as tree_map_params
from ._core.tree_ops import max as tree_max
from ._core.tree_ops import min as tree_min
from ._core.tree_ops import mul as tree_mul
from ._core.tree_ops import norm as tree_norm
from ._core.tree_ops import ones_like as tree_ones_like
from ._core.tree_ops import random_like as tree_random_like
from ._core.tree_ops import real as tree_real
from ._core.tree_ops import scale as tree_scale
from ._core.tree_ops import set as tree_set
from ._core.tree_ops import size as tree_size
from ._core.tree_ops import split_key_like as tree_split_key_like
from ._core.tree_ops import sub as tree_sub
from ._core.tree_ops import sum as tree_sum
from ._core.tree_ops import unwrap_random_key_data as tree_unwrap_random_key_data
from ._core.tree_ops import update_infinity_moment as tree_update_infinity_moment
from ._core.tree_ops import update_moment as tree_update_moment
from ._core.tree_ops import (
    update_moment_per_elem_norm as tree_update_moment_per_elem_norm,
)
from ._core.tree_ops import vdot as tree_vdot
from ._core.tree_ops import where as tree_where
from ._core.tree_ops import zeros_like as tree_zeros_like

__all__ = [
    "NamedTupleKey",
    "tree_add",
    "tree_add_scale",
    "tree_allclose",
    "tree_batch_shape",
    "tree_bias_correction",
    "tree_cast",
    "tree_cast_like",
    "tree_clip",
    "tree_conj",
    "tree_div",
    "tree_dtype",
    "tree_full_like",
    "tree_get",
    "tree_get_all_with_path",
    "tree_map_params",
    "tree_max",
    "tree_min",
    "tree_mul",
    "tree_norm",
    "tree_ones_like",
    "tree_random_like",
    "tree_real",
    "tree_scale",
    "tree_set",
    "tree_size",
    "tree_split_key_like",
    "tree_sub",
    "tree_sum",
    "tree_unwrap_random_key_data",
    "tree_update_infinity_moment",
    "tree_update_moment",
    "tree_update_moment_per_elem_norm",
    "tree_vdot",
    "tree_where",
    "tree_zeros_like",
]
