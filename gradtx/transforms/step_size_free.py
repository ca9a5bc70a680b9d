r"""Step rules that use more than the gradient: noise, the loss, the distance.

* :func:`add_noise` adds annealed Gaussian noise; it carries a PRNG key in its
  state.
* :func:`scale_by_polyak` sets the step from the loss value, passed to
  ``update`` as the keyword argument ``value``.
* :func:`scale_by_distance_over_gradients` (DoG) sets each leaf's step from
  how far the parameters have moved since ``init``.

Per-leaf maths is lifted with :func:`gradtx._core.lifting.map_leaves` where every tree
has the update's shape; DoG's per-leaf scalars are walked explicitly, with the
same structure and shape checks.
"""

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import (
    NO_PARAMS_MSG,
    GradientTransformation,
    Updates,
    check_state,
    init_empty_state,
)
from .._core.lifting import (
    flatten_like,
    leaf_paths,
    map_leaves,
    state_dtype,
    tree_sum_of_squares,
    upcast,
)
from .._core.traits import elementwise

_POLYAK_VARIANTS = ("sps", "sps+")
_FLOAT64_EPS = float(np.finfo(np.float64).eps)


def scale_by_polyak(
    f_min: chex.Numeric = 0.0,
    max_learning_rate: chex.Numeric = 1.0,
    eps: chex.Numeric = 0.0,
    variant: str = "sps",
) -> GradientTransformation:
    r"""Scales all updates by Polyak's step ``min((f − f*) / (‖u‖² + ε), γ_max)``.

    ``f`` is the loss value, given to ``update`` as the keyword argument
    ``value`` (a scalar); ``‖u‖`` is the global norm of the incoming updates.
    Variant ``"sps+"`` uses :math:`\max(f - f^\star, 0)`. Where
    :math:`\|u\|^2 + \epsilon` is not above float64's machine epsilon the
    step is 0. See :func:`gradtx.polyak_sgd` for the full rule and references.

    Unlike Optax, a missing ``value`` or a non-scalar one raises a clear error
    (Optax fails with a bare ``TypeError``, or broadcasts a batch of losses
    into the updates' shapes), and an unknown ``variant`` is rejected when the
    transformation is built rather than at the first update.

    Args:
      f_min: :math:`f^\star`, a lower bound of the loss.
      max_learning_rate: :math:`\gamma_{\max} >= 0`, the largest step.
      eps: :math:`\epsilon >= 0` added to the squared norm.
      variant: ``"sps"`` or ``"sps+"``.

    Returns:
      A stateless :class:`GradientTransformation` whose ``update`` needs
      ``value=``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import scale_by_polyak
      >>> tx = scale_by_polyak()
      >>> g = jnp.array([2.0, 0.0])  # f(x) = x0^2 at x0 = 1: f = 1, |g|^2 = 4
      >>> tx.update(g, tx.init(None), value=1.0)[0].tolist()
      [0.5, 0.0]
    """
    owner = "scale_by_polyak"
    _validate.number(owner, "f_min", f_min)
    _validate.non_negative(owner, "max_learning_rate", max_learning_rate)
    _validate.non_negative(owner, "eps", eps)
    if variant not in _POLYAK_VARIANTS:
        raise ValueError(
            f"{owner}: `variant` must be one of {_POLYAK_VARIANTS}, got {variant!r}."
        )

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        del params, extra_args
        if value is None:
            raise TypeError(
                f"{owner}: `update` needs the loss: call "
                "`update(updates, state, params, value=loss)`."
            )
        if jnp.ndim(value) != 0:
            raise ValueError(
                f"{owner}: `value` must be a scalar loss, got shape {jnp.shape(value)}."
            )
        sq_norm = tree_sum_of_squares(updates)
        gap = jnp.asarray(value - f_min).astype(sq_norm.dtype)
        if variant == "sps+":
            gap = jnp.maximum(gap, 0.0)
        denom = sq_norm + eps
        tiny = denom <= _FLOAT64_EPS
        safe = jnp.where(tiny, 1.0, denom)  # no NaN, not even in gradients
        step = jnp.where(tiny, 0.0, jnp.minimum(gap / safe, max_learning_rate))
        return map_leaves(lambda g: step * g, updates, owner=owner), state

    return elementwise(GradientTransformation(init_empty_state, update_fn))


class ScaleByDistanceOverGradientsState(NamedTuple):
    """Per leaf: the largest distance from the initial params so far (a
    scalar), the running sum of squared gradients (shape ``(1,)``), and the
    initial params (in ``param_dtype``)."""

    max_dist: Updates
    grad_sum_of_squares: Updates
    init_params: Updates


def _dist(x, y=0.0):
    return jnp.sqrt(jnp.sum(_maths.abs_sq(x - y)))


def scale_by_distance_over_gradients(
    reps_rel: chex.Numeric = 1e-6,
    eps: chex.Numeric = 1e-8,
    param_dtype: Any = jnp.float32,
    global_scale: chex.Numeric = 1.0,
) -> GradientTransformation:
    r"""Layer-wise DoG: ``u = s · r_t / sqrt(Σ_k ‖g_k‖² + ε) · g`` per leaf.

    For each leaf, :math:`r_t = \max(r_\epsilon, \max_{k \le t}
    \|\theta_k - \theta_0\|)` is the largest distance the leaf has moved from
    its initial value (the current params included), started at
    :math:`r_\epsilon` = ``reps_rel`` · (1 + ‖θ_0‖), and the denominator
    sums the squared norms of all the leaf's gradients so far:

    .. math::
        u_t = s\, \frac{r_t}{\sqrt{\sum_{k \le t} \|g_k\|^2 + \epsilon}}\, g_t

    with :math:`s` = ``global_scale`` (−1 to descend when used alone). This
    is "layer-wise DoG" (LDoG); the paper recommends averaging the iterates.

    Unlike Optax, a scalar (shape ``()``) leaf gets an update of shape ``()``
    (Optax returns shape ``(1,)``, which silently turns the parameter into a
    vector), and the update takes the gradient's dtype.

    Reference: Ivgi, Hinder & Carmon, 2023, "DoG is SGD's Best Friend: A
    Parameter-Free Dynamic Step Size Schedule".

    Args:
      reps_rel: the relative initial distance, > 0 (1e-4 with batch
        normalisation, 1e-6 otherwise, per the paper).
      eps: :math:`\epsilon >= 0` added to the sum of squared gradients.
      param_dtype: dtype in which the initial params are stored (None: theirs).
      global_scale: :math:`s`, any real number.

    Returns:
      A :class:`GradientTransformation` with state
      :class:`ScaleByDistanceOverGradientsState`; ``update`` needs ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import scale_by_distance_over_gradients
      >>> tx = scale_by_distance_over_gradients(reps_rel=0.5, eps=0.0)
      >>> p = jnp.array([3.0, 4.0])  # r = 0.5 · (1 + 5) = 3
      >>> tx.update(jnp.array([0.0, 2.0]), tx.init(p), p)[0].tolist()
      [0.0, 3.0]
    """
    owner = "scale_by_distance_over_gradients"
    _validate.positive(owner, "reps_rel", reps_rel)
    _validate.non_negative(owner, "eps", eps)
    param_dtype = _validate.float_dtype(owner, "param_dtype", param_dtype)
    _validate.number(owner, "global_scale", global_scale)

    def init_fn(params):
        def start(x):
            return (reps_rel * (1 + _dist(upcast(x)))).astype(jnp.result_type(x))

        # A copy (a jitted step may donate params and state together).
        init_params = jax.tree.map(jnp.copy, params)
        if param_dtype is not None:
            init_params = jax.tree.map(
                lambda x: jnp.array(x, state_dtype(x, param_dtype)), params
            )
        return ScaleByDistanceOverGradientsState(
            max_dist=jax.tree.map(start, params),
            grad_sum_of_squares=jax.tree.map(lambda _: jnp.zeros(1), params),
            init_params=init_params,
        )

    def leaf(g, d, s, p, p0):
        d = jnp.maximum(d, _dist(p, p0))
        s = s + jnp.sum(_maths.abs_sq(g))
        eta = global_scale * (d / jnp.sqrt(s + eps))
        return jnp.reshape(eta, ()) * g, d, s

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_state(owner, state, ScaleByDistanceOverGradientsState)
        if params is None:
            raise ValueError(NO_PARAMS_MSG.format(name=owner))
        leaves, treedef = jax.tree.flatten(updates)
        names = ["max_dist", "grad_sum_of_squares", "params", "init_params"]
        trees = [state.max_dist, state.grad_sum_of_squares, params, state.init_params]
        others = [
            flatten_like(treedef, t, name=n, owner=owner)
            for t, n in zip(trees, names, strict=True)
        ]
        outs = []
        for i, args in enumerate(zip(leaves, *others, strict=True)):
            want = [(), (1,), jnp.shape(args[0]), jnp.shape(args[0])]
            for name, x, w in zip(names, args[1:], want, strict=True):
                if jnp.shape(x) != w:
                    raise ValueError(
                        f"{owner}: shape mismatch at leaf {leaf_paths(updates)[i]}: "
                        f"`{name}` should have shape {w}, got {jnp.shape(x)}."
                    )
            new = leaf(*(upcast(x) for x in args))
            outs.append(
                [x.astype(jnp.result_type(a)) for x, a in zip(new, args, strict=False)]
            )
        cols = list(zip(*outs, strict=True)) or [[]] * 3
        u, d, s = (treedef.unflatten(list(c)) for c in cols)
        return u, ScaleByDistanceOverGradientsState(d, s, state.init_params)

    return GradientTransformation(init_fn, update_fn)
