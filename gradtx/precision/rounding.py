r"""bfloat16/float16 parameters without a float32 master copy.

Adding an update to a bfloat16 parameter rounds the sum to 8 significant bits:
an update smaller than half a unit in the last place (ulp) of the parameter is
lost (``1.0 - 1e-4`` is ``1.0`` in bfloat16), so 100 SGD steps of ``1e-4`` leave
a parameter equal to 1.0 at exactly 1.0. Mixed-precision recipes keep a float32
"master" copy of the weights for that reason, at 4 more bytes per parameter.
The two wrappers here make low-precision parameters learn without one; each
wraps ANY gradtx (or Optax) optimizer:

* :func:`kahan_summation` keeps the rounding error of every step in a
  compensation buffer (in the parameter's dtype: 2 bytes per bfloat16
  parameter) and adds it back at the next step;
* :func:`stochastic_rounding` rounds ``p + u`` up or down at random, with the
  probabilities that make the rounding unbiased, from a PRNG key in its state
  (no per-parameter state).

Both compute the new parameter :math:`t` in float32 (float64 for float64
parameters) and return the update :math:`u' = t - p` in that dtype. For two
nearby bfloat16 values the difference is exact in float32, so
``gradtx.apply_updates(p, u')`` (which adds in float32 and casts back) yields
exactly :math:`t`. Make the wrapper the LAST transformation before
``apply_updates`` (``kahan_summation(gradtx.adam(1e-3))``): anything that
rescales ``u'`` afterwards breaks that exactness. Both need ``params`` in
``update``.

References:
  Kahan, `Further remarks on reducing truncation errors
  <https://doi.org/10.1145/363707.363723>`_, CACM 8(1), 1965.
  Gupta et al., `Deep Learning with Limited Numerical Precision
  <https://arxiv.org/abs/1502.02551>`_, ICML 2015.
  Zamirai et al., `Revisiting BFloat16 Training
  <https://arxiv.org/abs/2010.06192>`_, 2020.
"""

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from .._core import maths as _maths
from .._core.base import (
    NO_PARAMS_MSG,
    GradientTransformation,
    OptState,
    check_state,
    with_extra_args_support,
)
from .._core.lifting import (
    check_leaf_dtypes,
    flatten_like,
    leaf_paths,
    map_leaves,
    tree_zeros_like,
)
from .._core.low_precision_stall import compensated
from .._core.traits import composed
from ..combinators.chain import check_transforms
from ..transforms.noise import as_key

_BF16 = jnp.dtype(jnp.bfloat16)
_F16 = jnp.dtype(jnp.float16)
_FULL = tuple(jnp.dtype(d) for d in ("float32", "float64", "complex64", "complex128"))


# --------------------------------------------------------------------------
# Per-array maths.


def _kahan_add(u, c, p, dtype):
    """One compensated step: ``(t - p, y - (t - p))`` with ``y = u + c``.

    ``t = round_dtype(p + y)``; all arithmetic in ``u``'s (wide) dtype.
    """
    c, p = c.astype(u.dtype), p.astype(u.dtype)
    y = u + c
    step = (p + y).astype(dtype).astype(u.dtype) - p
    return step, y - step


def _round_bf16(x, bits):
    """``x`` (float32) rounded to bfloat16 up or down, unbiased.

    Adds 16 uniform random bits to the 16 low mantissa bits of ``x``'s bit
    pattern and truncates them: the carry rounds the magnitude up with
    probability (dropped bits) / 2^16. ``inf`` stays ``inf``; NaN stays NaN.
    """
    raw = jax.lax.bitcast_convert_type(x, jnp.uint32)
    raw = (raw + (bits >> 16)) & jnp.uint32(0xFFFF0000)
    rounded = jax.lax.bitcast_convert_type(raw, jnp.float32)
    return jnp.where(jnp.isnan(x), x, rounded).astype(jnp.bfloat16)


def _round_f16(x, uniform):
    """``x`` (float32) rounded to float16 up or down, unbiased.

    Takes the float16 neighbours ``lo <= x <= hi`` and returns ``hi`` with
    probability ``(x - lo) / (hi - lo)``. Values that round to ``inf`` (or are
    not finite) get the ordinary round-to-nearest result.
    """
    near = x.astype(jnp.float16)
    toward = jnp.where(near.astype(jnp.float32) <= x, jnp.inf, -jnp.inf)
    other = jnp.nextafter(near, toward.astype(jnp.float16))
    lo, hi = jnp.minimum(near, other), jnp.maximum(near, other)
    lo32, hi32 = lo.astype(jnp.float32), hi.astype(jnp.float32)
    rounded = jnp.where(uniform < (x - lo32) / (hi32 - lo32), hi, lo)
    return jnp.where(jnp.isfinite(near), rounded, near)


def _stochastic_step(u, p, noise, dtype):
    """``round_stochastic(p + u) - p`` for low-precision ``dtype``; else ``u``."""
    if dtype == _BF16:
        return _round_bf16(p + u, noise).astype(jnp.float32) - p
    if dtype == _F16:
        return _round_f16(p + u, noise).astype(jnp.float32) - p
    return u


# --------------------------------------------------------------------------
# Tree plumbing.


def _inner_step(owner, inner, state, updates, params, extra_args, supported, what):
    """The wrapped optimizer's step: ``(update leaves, treedef, param dtypes,
    inner state)``, after the checks both wrappers share."""
    if params is None:
        raise ValueError(NO_PARAMS_MSG.format(name=owner))
    updates, inner_state = inner.update(
        updates, state.inner_state, params, **extra_args
    )
    return (*_flat_params(owner, updates, params, supported, what), inner_state)


def _flat_params(owner, updates, params, supported, what):
    """The update leaves, the param leaves laid out like them, their dtypes."""
    u_leaves, treedef = jax.tree.flatten(updates)
    p_leaves = flatten_like(
        treedef,
        params,
        name="params",
        owner=owner,
        hint="Were the updates computed for these params?",
    )
    check_leaf_dtypes(owner, updates, u_leaves)
    dtypes = [jnp.result_type(p) for p in p_leaves]
    for i, (u, dtype) in enumerate(zip(u_leaves, dtypes, strict=True)):
        if dtype not in supported:
            raise TypeError(
                f"{owner}: leaf {leaf_paths(updates)[i]} of `params` has dtype "
                f"{dtype}; {what} Keep other leaves out of it "
                "(`gradtx.partition`, `gradtx.masked`)."
            )
        if jnp.iscomplexobj(u) and not jnp.issubdtype(dtype, jnp.complexfloating):
            raise TypeError(
                f"{owner}: leaf {leaf_paths(updates)[i]} has a complex update "
                f"({jnp.result_type(u)}) for a real {dtype} parameter: the "
                "imaginary part would be dropped."
            )
    return u_leaves, treedef, dtypes


def _wide(u, dtype):
    """``u`` in the dtype the new parameter is computed in (float32 at least)."""
    wide = jnp.float32 if dtype in (_BF16, _F16) else dtype
    return jnp.asarray(u).astype(jnp.promote_types(jnp.result_type(u), wide))


class KahanSummationState(NamedTuple):
    """The inner optimizer's state and the compensation buffer.

    Attributes:
      inner_state: the state of the wrapped optimizer.
      compensation: per parameter leaf, the part of the past updates that
        rounding has not yet added to the parameter, in the parameter's dtype.
    """

    inner_state: OptState
    compensation: Any


def kahan_summation(inner: GradientTransformation) -> GradientTransformation:
    r"""Adds ``inner``'s updates to the params with Kahan-compensated rounding.

    With :math:`u` the update of ``inner``, :math:`c` the compensation
    (initially 0) and :math:`\mathrm{rd}` rounding to the parameter's dtype,
    each step computes, in float32 (in the parameter's dtype when it is wider):

    .. math::

      y = u + c, \qquad t = \mathrm{rd}(p + y), \qquad
      u' = t - p, \qquad c \leftarrow y - u'

    and returns :math:`u'`, so that ``apply_updates(p, u')`` is exactly
    :math:`t`. What rounding drops from one step is carried to the next, so
    ``p + c`` follows the sum of the updates to about twice the parameter's
    precision: bfloat16 parameters trained with it track float32 ones.

    The compensation has the parameter's dtype: 2 bytes per bfloat16/float16
    parameter (half of a float32 master copy), 4 per float32 parameter, for
    which it is ordinary Kahan summation in float32 (useful when updates are
    below float32's resolution of the weights). Returned updates are float32
    (float64/complex for such parameters). Make this the last transformation
    before ``apply_updates``.

    Args:
      inner: the optimizer whose updates are applied, e.g. ``gradtx.adam(1e-3)``.

    Returns:
      A :class:`GradientTransformation` with state :class:`KahanSummationState`.
      Its ``update`` needs ``params``.

    Raises:
      TypeError: ``inner`` is not a transformation; a parameter leaf is not
        bfloat16, float16, float32, float64 or complex (named by its path); a
        complex update for a real parameter.
      ValueError: ``update`` without ``params``; a state not made by this
        wrapper's ``init``; trees that do not match (naming the leaf path).

    References:
      Kahan, `Further remarks on reducing truncation errors
      <https://doi.org/10.1145/363707.363723>`_, CACM 8(1), 1965; Zamirai et
      al., `Revisiting BFloat16 Training <https://arxiv.org/abs/2010.06192>`_,
      2020.

    Examples:
      >>> import jax.numpy as jnp, gradtx
      >>> from gradtx import kahan_summation
      >>> p = q = jnp.ones((), jnp.bfloat16)
      >>> plain, tx = gradtx.sgd(1e-3), kahan_summation(gradtx.sgd(1e-3))
      >>> s, t = plain.init(p), tx.init(q)
      >>> for _ in range(10):
      ...     u, s = plain.update(jnp.ones_like(p), s, p)
      ...     p = gradtx.apply_updates(p, u)
      ...     v, t = tx.update(jnp.ones_like(q), t, q)
      ...     q = gradtx.apply_updates(q, v)
      >>> float(p), float(q)  # float32 gives 0.99
      (1.0, 0.98828125)
    """
    owner = "kahan_summation"
    check_transforms(owner, [inner])
    inner = with_extra_args_support(inner)
    what = "kahan_summation supports bfloat16, float16, float32, float64, complex."
    supported = (_BF16, _F16, *_FULL)

    def init_fn(params):
        compensation = tree_zeros_like(params)
        with compensated():  # what rounding drops is kept: no stall warning
            return KahanSummationState(inner.init(params), compensation)

    def update_fn(updates, state, params=None, **extra_args):
        check_state(owner, state, KahanSummationState)
        u_leaves, treedef, dtypes, inner_state = _inner_step(
            owner, inner, state, updates, params, extra_args, supported, what
        )
        wide = treedef.unflatten(
            [_wide(u, d) for u, d in zip(u_leaves, dtypes, strict=True)]
        )
        updates, compensation = map_leaves(
            _kahan_add,
            wide,
            state.compensation,
            params,
            names=["compensation", "params"],
            owner=owner,
            nout=2,
            per_leaf=[dtypes],
        )
        return updates, KahanSummationState(inner_state, compensation)

    return composed(GradientTransformation(init_fn, update_fn), [inner])


class StochasticRoundingState(NamedTuple):
    """The inner optimizer's state, the step count and the PRNG key.

    Attributes:
      inner_state: the state of the wrapped optimizer.
      count: the number of ``update`` calls so far (int32, saturating).
      rng_key: the wrapper's key; step ``k`` draws from
        ``fold_in(rng_key, k)`` (it is not split, so it never changes).
    """

    inner_state: OptState
    count: chex.Array
    rng_key: chex.Array


def stochastic_rounding(
    inner: GradientTransformation, key: Any
) -> GradientTransformation:
    r"""Rounds ``p + u`` to bfloat16/float16 up or down at random, unbiased.

    With :math:`u` the update of ``inner`` and :math:`x = p + u` in float32,
    the new parameter :math:`t` is the neighbour of :math:`x` in the
    parameter's dtype above (:math:`x_\uparrow`) or below
    (:math:`x_\downarrow`) it, with

    .. math::

      P(t = x_\uparrow) = \frac{x - x_\downarrow}{x_\uparrow - x_\downarrow},
      \qquad \mathbb{E}[t] = x, \qquad u' = t - p

    and the update :math:`u'` is returned in float32, so that
    ``apply_updates(p, u')`` is exactly :math:`t`. An update far below the
    parameter's resolution still moves it on average. bfloat16 rounding adds
    16 random bits to the 16 low mantissa bits of :math:`x` and truncates;
    float16 compares a uniform draw with the fraction above. Float32, float64
    and complex parameters pass through (their updates are returned
    unchanged); other dtypes raise.

    Each step draws fresh bits for each leaf from ``fold_in(fold_in(key,
    step), leaf index)``: the same key gives the same run, another key
    another one. The state holds no per-parameter buffer (0 bytes per
    parameter). Make this the last transformation before ``apply_updates``.

    Args:
      inner: the optimizer whose updates are applied, e.g. ``gradtx.adam(1e-3)``.
      key: a PRNG key (``jax.random.key``, or a raw ``jax.random.PRNGKey``) or
        an integer seed.

    Returns:
      A :class:`GradientTransformation` with state
      :class:`StochasticRoundingState`. Its ``update`` needs ``params``.

    Raises:
      TypeError: ``inner`` is not a transformation; ``key`` is not a key or
        an integer; a parameter leaf of another dtype (e.g. float8, named by
        its path); a complex update for a real parameter.
      ValueError: ``update`` without ``params``; a state not made by this
        wrapper's ``init``; trees that do not match (naming the leaf path).

    References:
      Gupta et al., `Deep Learning with Limited Numerical Precision
      <https://arxiv.org/abs/1502.02551>`_, ICML 2015; Zamirai et al.,
      `Revisiting BFloat16 Training <https://arxiv.org/abs/2010.06192>`_, 2020.

    Examples:
      >>> import jax.numpy as jnp, gradtx
      >>> from gradtx import stochastic_rounding
      >>> tx = stochastic_rounding(gradtx.sgd(1e-3), key=0)
      >>> p = jnp.ones(1000, jnp.bfloat16)
      >>> u, _ = tx.update(-jnp.ones_like(p), tx.init(p), p)
      >>> p = gradtx.apply_updates(p, u)  # 1.001: 1.0 or 1.0078125 (one ulp up)
      >>> sorted(set(p.tolist()))
      [1.0, 1.0078125]
    """
    owner = "stochastic_rounding"
    check_transforms(owner, [inner])
    inner = with_extra_args_support(inner)
    key = as_key(owner, key)
    what = (
        "stochastic_rounding rounds bfloat16 and float16 parameters and passes "
        "float32, float64 and complex ones through."
    )
    supported = (_BF16, _F16, *_FULL)

    def init_fn(params):
        with compensated():  # rounding is unbiased: no stall warning
            inner_state = inner.init(params)
        return StochasticRoundingState(
            inner_state=inner_state,
            count=jnp.zeros([], jnp.int32),
            rng_key=key,
        )

    def update_fn(updates, state, params=None, **extra_args):
        check_state(owner, state, StochasticRoundingState)
        u_leaves, treedef, dtypes, inner_state = _inner_step(
            owner, inner, state, updates, params, extra_args, supported, what
        )
        step_key = jax.random.fold_in(state.rng_key, state.count)
        noise, wide = [], []
        for i, (u, dtype) in enumerate(zip(u_leaves, dtypes, strict=True)):
            k = jax.random.fold_in(step_key, i)
            if dtype == _BF16:
                noise.append(jax.random.bits(k, jnp.shape(u), jnp.uint32))
            elif dtype == _F16:
                noise.append(jax.random.uniform(k, jnp.shape(u), jnp.float32))
            else:
                noise.append(None)
            low = dtype in (_BF16, _F16)
            wide.append(jnp.asarray(u).astype(jnp.float32) if low else u)
        updates = map_leaves(
            _stochastic_step,
            treedef.unflatten(wide),
            params,
            names=["params"],
            owner=owner,
            per_leaf=[noise, dtypes],
        )
        count = _maths.safe_increment(state.count)
        return updates, StochasticRoundingState(inner_state, count, state.rng_key)

    return composed(GradientTransformation(init_fn, update_fn), [inner])
