"""Adafactor's factored second moment.

For a matrix gradient ``G`` (n × m) Adafactor keeps only the running means of
``G²`` over its rows (``n`` numbers) and over its columns (``m`` numbers) and
rebuilds the full second moment as their rank-one outer product, divided by
their common mean: memory ``n + m`` instead of ``n·m``. Leaves with fewer than
two dimensions of at least ``min_dim_size_to_factor`` keep a full second
moment, as RMSProp would.

The state leaves of a factored leaf have other shapes than the leaf itself,
so this module walks the trees with :func:`gradtx._core.lifting.flatten_like` and
checks every state leaf's shape against the one ``init`` would give, instead of
using :func:`gradtx._core.lifting.map_leaves`. Computation is in float32 (at least);
each state leaf keeps the dtype it was given at ``init`` (the params').
"""

from collections.abc import Callable
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, Updates, check_state
from .._core.lifting import flatten_like, leaf_paths, square_dtype, upcast
from .._core.placement import zeros_derived


def _decay_rate_pow(step: chex.Numeric, exponent: chex.Numeric = 0.8) -> chex.Array:
    """Adafactor's second-moment decay at step ``t = step + 1``: ``1 − t^(−k)``."""
    t = jnp.asarray(step + 1, jnp.float32)
    return 1.0 - t ** (-exponent)


def _factored_axes(shape, factored, min_dim_size_to_factor):
    """``(d1, d0)``: the second-largest and largest axes, or None (no factoring).

    Ties are broken as ``numpy.argsort`` breaks them, as in Optax, so the
    state shapes are the same in both libraries.
    """
    if not factored or len(shape) < 2:
        return None
    order = np.argsort(shape)
    d1, d0 = int(order[-2]), int(order[-1])
    if shape[d1] < min_dim_size_to_factor:
        return None
    return d1, d0


def _state_shapes(shape, axes):
    """Shapes of ``(v_row, v_col, v)`` for a leaf of shape ``shape``."""
    return tuple(
        tuple(1 if d is None else shape[d] for d in dims)
        for dims in _state_dims(shape, axes)
    )


def _state_dims(shape, axes):
    """Which dimension of the leaf each dimension of ``(v_row, v_col, v)`` is
    (``None``: a placeholder): the state is sharded as those are."""
    if axes is None:
        return (None,), (None,), tuple(range(len(shape)))
    d1, d0 = axes
    keep = lambda axis: tuple(i for i in range(len(shape)) if i != axis)
    return keep(d0), keep(d1), (None,)


class FactoredState(NamedTuple):
    """Step count; row and column means of ``g²`` (factored leaves; ``(1,)``
    placeholders elsewhere); full ``g²`` means (other leaves; ``(1,)``
    placeholders for factored ones)."""

    count: chex.Array
    v_row: Updates
    v_col: Updates
    v: Updates


def _factored_leaf(g, v_row, v_col, v, decay, epsilon, axes):
    """One leaf: the scaled update and the new ``(v_row, v_col, v)``."""
    g2 = _maths.abs_sq(g) + epsilon
    if axes is None:
        v = decay * v + _maths.one_minus(decay) * g2
        return g * v**-0.5, v_row, v_col, v
    d1, d0 = axes
    v_row = decay * v_row + _maths.one_minus(decay) * jnp.mean(g2, axis=d0)
    v_col = decay * v_col + _maths.one_minus(decay) * jnp.mean(g2, axis=d1)
    # In v_row (axis d0 removed) the old axis d1 has moved left if d1 > d0.
    row_axis = d1 - 1 if d1 > d0 else d1
    row_mean = jnp.mean(v_row, axis=row_axis, keepdims=True)
    row_factor = jnp.expand_dims((v_row / row_mean) ** -0.5, d0)
    col_factor = jnp.expand_dims(v_col**-0.5, d1)
    return g * row_factor * col_factor, v_row, v_col, v


def scale_by_factored_rms(
    factored: bool = True,
    decay_rate: chex.Numeric = 0.8,
    step_offset: chex.Numeric = 0,
    min_dim_size_to_factor: int = 128,
    epsilon: chex.Numeric = 1e-30,
    decay_rate_fn: Callable[[chex.Numeric, chex.Numeric], chex.Numeric] = (
        _decay_rate_pow
    ),
) -> GradientTransformation:
    r"""Adafactor scaling: ``u = g / sqrt(v̂)`` with a factored estimate ``v̂``.

    With :math:`\beta_t` = ``decay_rate_fn(t − step_offset, decay_rate)`` (by
    default :math:`1 - (t+1)^{-0.8}`, :math:`t = 0, 1, \dots`) and
    :math:`G = g^2 + \epsilon_1`, a factored leaf (two axes of size at least
    ``min_dim_size_to_factor``: rows :math:`i`, columns :math:`j` along the
    two largest axes) keeps

    .. math::
        R_t = \beta_t R_{t-1} + (1-\beta_t)\, \mathrm{mean}_j G, \quad
        C_t = \beta_t C_{t-1} + (1-\beta_t)\, \mathrm{mean}_i G, \quad
        \hat v_{ij} = R_i C_j / \mathrm{mean}_i R

    and any other leaf a full :math:`v_t = \beta_t v_{t-1} + (1-\beta_t) G`.
    See :func:`gradtx.adafactor` for the full optimizer and reference.

    Args:
      factored: factor the second moment of leaves with two large axes.
      decay_rate: the second argument of ``decay_rate_fn`` (the exponent 0.8
        of the default schedule), a real number >= 0.
      step_offset: subtracted from the step before the decay schedule is
        evaluated (to restart the schedule for fine-tuning), >= 0. Unlike
        Optax (NaN), steps before ``step_offset`` use the schedule's value at
        0.
      min_dim_size_to_factor: factor a leaf only if its two largest axes both
        have at least this many entries, >= 0.
      epsilon: :math:`\epsilon_1 > 0` added to :math:`g^2` (0 would give NaN
        on coordinates whose gradient is always 0).
      decay_rate_fn: ``(step, decay_rate) -> β`` in [0, 1].

    Returns:
      A :class:`GradientTransformation` with state :class:`FactoredState`.
      ``params`` are not needed.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import scale_by_factored_rms
      >>> tx = scale_by_factored_rms(min_dim_size_to_factor=2)
      >>> p = jnp.ones((2, 3))
      >>> state = tx.init(p)
      >>> [x.shape for x in state[1:]]  # v_row, v_col, v
      [(2,), (3,), (1,)]
      >>> u, state = tx.update(2 * p, state, p)  # first step: u = g / |g|
      >>> float(u[0, 0])
      1.0
    """
    owner = "scale_by_factored_rms"
    _validate.flag(owner, "factored", factored)
    _validate.non_negative(owner, "decay_rate", decay_rate)
    _validate.non_negative(owner, "step_offset", step_offset)
    _validate.integer(owner, "min_dim_size_to_factor", min_dim_size_to_factor)
    _validate.positive(owner, "epsilon", epsilon)
    if not callable(decay_rate_fn):
        raise TypeError(
            f"{owner}: `decay_rate_fn` must be callable (step, decay_rate) -> "
            f"decay, got {decay_rate_fn!r}."
        )
    axes_of = lambda shape: _factored_axes(shape, factored, min_dim_size_to_factor)

    def init_leaf(p):
        shape, axes = jnp.shape(p), axes_of(jnp.shape(p))
        return tuple(
            zeros_derived(p, s, square_dtype(p), dims)
            for s, dims in zip(
                _state_shapes(shape, axes), _state_dims(shape, axes), strict=True
            )
        )

    def init_fn(params):
        leaves, treedef = jax.tree.flatten(params)
        cols = list(zip(*[init_leaf(p) for p in leaves], strict=True)) or [[]] * 3
        v_row, v_col, v = (treedef.unflatten(list(c)) for c in cols)
        return FactoredState(jnp.zeros([], jnp.int32), v_row, v_col, v)

    def _check(updates, leaves, others, names):
        for i, g in enumerate(leaves):
            shape = jnp.shape(g)
            want = (*_state_shapes(shape, axes_of(shape)), shape)
            for name, other, w in zip(names, others, want, strict=False):
                if jnp.shape(other[i]) != w:
                    raise ValueError(
                        f"{owner}: shape mismatch at leaf {leaf_paths(updates)[i]}: "
                        f"`updates` has shape {shape}, so `{name}` should have "
                        f"shape {w}, got {jnp.shape(other[i])}."
                    )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_state(owner, state, FactoredState)
        leaves, treedef = jax.tree.flatten(updates)
        trees = [state.v_row, state.v_col, state.v]
        names = ["v_row", "v_col", "v"]
        if params is not None:
            trees, names = [*trees, params], [*names, "params"]
        others = [
            flatten_like(treedef, t, name=n, owner=owner)
            for t, n in zip(trees, names, strict=True)
        ]
        _check(updates, leaves, others, names)
        step = jnp.maximum(state.count - step_offset, 0)
        decay = decay_rate_fn(step, decay_rate)
        outs = []
        for g, vr, vc, v in zip(leaves, *others[:3], strict=True):
            new = _factored_leaf(
                *(upcast(x) for x in (g, vr, vc, v)),
                decay,
                epsilon,
                axes_of(jnp.shape(g)),
            )
            dtypes = [jnp.result_type(x) for x in (g, vr, vc, v)]
            outs.append([x.astype(d) for x, d in zip(new, dtypes, strict=True)])
        cols = list(zip(*outs, strict=True)) or [[]] * 4
        u, v_row, v_col, v = (treedef.unflatten(list(c)) for c in cols)
        count = _maths.safe_increment(state.count)
        return u, FactoredState(count, v_row, v_col, v)

    return GradientTransformation(init_fn, update_fn)
