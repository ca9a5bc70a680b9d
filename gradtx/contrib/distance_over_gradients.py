r"""Distance over Gradients: step sizes from how far the params have moved.

DoG and DoWG need no learning rate: the step is the largest distance the
params have travelled from their starting point, divided by the root of a sum
of squared gradient norms (plain for DoG, weighted by the squared distance
for DoWG). Both are *global*: one scalar step for the whole tree, from norms
over every leaf (the layer-wise variant of DoG is
:func:`gradtx.transforms.scale_by_distance_over_gradients`).

References: Ivgi, Hinder & Carmon, 2023, "DoG is SGD's Best Friend: A
Parameter-Free Dynamic Step Size Schedule", https://arxiv.org/abs/2302.12022;
Khaled, Mishchenko & Jin, 2023, "DoWG Unleashed: An Efficient Universal
Parameter-Free Gradient Descent Method", https://arxiv.org/abs/2305.16284.
"""

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from .._core import validation as _validate
from .._core.base import (
    NO_PARAMS_MSG,
    GradientTransformation,
    ScalarOrSchedule,
    Updates,
    check_state,
    identity,
)
from .._core.lifting import (
    check_array_leaves,
    global_norm,
    map_leaves,
    tree_sum_of_squares,
)
from .._core.traits import elementwise
from ..combinators.chain import chain
from ..transforms.scaling import scale_by_learning_rate
from ..transforms.weight_decay import add_decayed_weights

__all__ = ["DoGState", "DoWGState", "dog", "dowg", "scale_by_dog", "scale_by_dowg"]

_INIT_STEPS = ("distance", "learning_rate", "heuristic")


def scalar_state_dtype(params: Any) -> jnp.dtype:
    """The dtype of a tree-wide scalar state: float64 when a leaf is 64-bit
    (and x64 is on), float32 otherwise.

    Optax starts these scalars in the lowest dtype of the params (and lets
    them change dtype after the first step when the tree mixes precisions); a
    running sum of squared norms kept in bfloat16 stops growing after a few
    hundred steps, so gradtx keeps them in the widest float (never below
    float32), fixed at ``init``. The values are Optax's for float32 params.
    """
    bits = [
        jnp.finfo(jnp.result_type(x)).bits
        for x in jax.tree.leaves(params)
        if jnp.issubdtype(jnp.result_type(x), jnp.inexact)
    ]
    if bits and max(bits) >= 64 and jax.config.jax_enable_x64:
        return jnp.dtype(jnp.float64)
    return jnp.dtype(jnp.float32)


def _distance_from_start(owner, updates, params, init_params):
    """``θ_t − θ_0`` leaf by leaf, checked against the updates' structure."""
    if params is None:
        raise ValueError(NO_PARAMS_MSG.format(name=owner))
    return map_leaves(
        lambda g, p, p0: p - p0,
        updates,
        params,
        init_params,
        names=["params", "init_params"],
        owner=owner,
    )


def _scale_updates(owner, updates, step):
    return map_leaves(lambda g: step * g, updates, owner=owner)


class DoGState(NamedTuple):
    """Optax's DoG state: whether no update was made yet, the initial params
    :math:`\\theta_0`, the largest distance :math:`\\bar r_t` so far and the sum
    :math:`G_t` of squared gradient norms (scalars)."""

    is_init_step: chex.Array
    init_params: Updates
    max_dist: chex.Array
    sum_sq_norm_grads: chex.Array


def scale_by_dog(
    init_step: tuple[str, chex.Numeric],
    eps: chex.Numeric = 1e-8,
) -> GradientTransformation:
    r"""DoG's step: ``u = r̄_t / sqrt(G_t + ε) · g`` (no sign flip).

    See :func:`gradtx.contrib.dog` for the rule, ``init_step`` and the
    reference. Optax keeps this primitive out of ``optax.contrib``'s public
    names; so does gradtx (import it from
    :mod:`gradtx.contrib.distance_over_gradients`).

    Args:
      init_step: ``(tag, value)`` with tag ``"distance"``, ``"learning_rate"``
        or ``"heuristic"`` and value > 0.
      eps: :math:`\epsilon >= 0` added to the sum of squared gradient norms.

    Returns:
      A :class:`GradientTransformation` with state :class:`DoGState`;
      ``update`` needs ``params``. With the ``"heuristic"`` tag, ``init`` must
      get the real initial params (their norm sets :math:`r_\epsilon`).

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.contrib.distance_over_gradients import scale_by_dog
      >>> tx = scale_by_dog(("distance", 0.5), eps=0.0)
      >>> p = jnp.array([1.0, 2.0])
      >>> u, _ = tx.update(jnp.array([3.0, 4.0]), tx.init(p), p)
      >>> u.tolist()  # r̄ / ‖g‖ · g = 0.5 / 5 · g
      [0.30000001192092896, 0.4000000059604645]
    """
    owner = "scale_by_dog"
    tag, value = _check_init_step(owner, init_step)
    _validate.non_negative(owner, "eps", eps)

    def init_fn(params):
        params = check_array_leaves(params)
        dtype = scalar_state_dtype(params)
        if tag == "distance":
            r0 = value
        elif tag == "heuristic":
            r0 = value * (1 + global_norm(params))
        else:
            r0 = 0.0
        return DoGState(
            is_init_step=jnp.asarray(True),
            init_params=jax.tree.map(jnp.copy, params),
            max_dist=jnp.asarray(r0, dtype),
            sum_sq_norm_grads=jnp.zeros([], dtype),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_state(owner, state, DoGState)
        moved = _distance_from_start(owner, updates, params, state.init_params)
        max_dist = jnp.maximum(state.max_dist, global_norm(moved))
        sum_sq = state.sum_sq_norm_grads + tree_sum_of_squares(updates)
        step = max_dist / jnp.sqrt(sum_sq + eps)
        if tag == "learning_rate":
            step = jnp.where(state.is_init_step, value, step)
        new_state = DoGState(
            is_init_step=jnp.zeros_like(state.is_init_step),
            init_params=state.init_params,
            max_dist=max_dist.astype(state.max_dist.dtype),
            sum_sq_norm_grads=sum_sq.astype(state.sum_sq_norm_grads.dtype),
        )
        return _scale_updates(owner, updates, step), new_state

    return elementwise(GradientTransformation(init_fn, update_fn))


def _check_init_step(owner, init_step):
    if not (isinstance(init_step, (tuple, list)) and len(init_step) == 2):
        raise ValueError(
            f"{owner}: `init_step` must be a pair (tag, value) with tag one of "
            f"{_INIT_STEPS}, got {init_step!r}."
        )
    tag, value = init_step
    if tag not in _INIT_STEPS:
        raise ValueError(
            f"{owner}: `init_step` tag must be one of {_INIT_STEPS}, got {tag!r}."
        )
    _validate.positive(owner, "init_step", value)
    return tag, value


def _check_decay(owner, learning_rate, weight_decay):
    _validate.scalar_or_schedule(owner, "learning_rate", learning_rate)
    if weight_decay is not None:
        _validate.scalar_or_schedule(owner, "weight_decay", weight_decay)


def dog(
    learning_rate: ScalarOrSchedule = 1.0,
    init_step: tuple[str, chex.Numeric] = ("heuristic", 1e-6),
    eps: chex.Numeric = 1e-8,
    weight_decay: chex.Numeric | None = None,
    mask: Any = None,
) -> GradientTransformation:
    r"""DoG (Distance over Gradients), a parameter-free step-size schedule for SGD.

    .. math::
        \bar r_t &= \max\big(r_\epsilon,\ \max_{k \le t} \|\theta_k - \theta_0\|\big),
        \qquad G_t = \sum_{k \le t} \|g_k\|^2, \\
        \theta_{t+1} &= \theta_t - \eta_t\,
            \frac{\bar r_t}{\sqrt{G_t + \epsilon}}\, g_t

    with norms over the whole tree and :math:`\eta_t` = ``learning_rate``
    (1: DoG proper; a schedule multiplies DoG's step). ``init_step`` sets the
    first step, which must be small: ``("distance", r)`` gives
    :math:`r_\epsilon = r`; ``("heuristic", a)`` gives
    :math:`r_\epsilon = a (1 + \|\theta_0\|)` (the paper suggests
    :math:`a = 10^{-6}`, or :math:`10^{-4}` with batch normalisation);
    ``("learning_rate", s)`` takes a first step of :math:`s\, g_0` and
    :math:`r_\epsilon = 0`. The authors recommend averaging the iterates.

    Reference: Ivgi, Hinder & Carmon, 2023, "DoG is SGD's Best Friend: A
    Parameter-Free Dynamic Step Size Schedule".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      init_step: ``(tag, value)``, tag one of ``"distance"``,
        ``"learning_rate"``, ``"heuristic"``; value > 0.
      eps: :math:`\epsilon >= 0`, added to :math:`G_t`.
      weight_decay: ``None`` (none), or :math:`\lambda >= 0` added to the
        gradient as :math:`\lambda\theta_t` before DoG's scaling.
      mask: a tree of bools (or a function of the params returning one): decay
        only where True.

    Returns:
      A :class:`GradientTransformation`; ``update`` needs ``params``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import gradtx
      >>> from gradtx.contrib import dog
      >>> f = lambda x: jnp.sum(x**2)
      >>> opt = dog(init_step=("distance", 0.1))
      >>> params = jnp.array([1.0, 2.0, 3.0])
      >>> state = opt.init(params)
      >>> for _ in range(50):
      ...     updates, state = opt.update(jax.grad(f)(params), state, params)
      ...     params = gradtx.apply_updates(params, updates)
      >>> bool(f(params) < 1e-3)
      True
    """
    _check_decay("dog", learning_rate, weight_decay)
    _check_init_step("dog", init_step)
    _validate.non_negative("dog", "eps", eps)
    return chain(
        identity() if weight_decay is None else add_decayed_weights(weight_decay, mask),
        scale_by_dog(init_step, eps),
        scale_by_learning_rate(learning_rate),
    )


class DoWGState(NamedTuple):
    """Optax's DoWG state: the initial params :math:`\\theta_0`, the weighted sum
    :math:`v_t` of squared gradient norms and the squared distance estimate
    :math:`\\bar r_t^2` (scalars)."""

    init_params: Updates
    weighted_sq_norm_grads: chex.Array
    estim_sq_dist: chex.Array


def scale_by_dowg(
    init_estim_sq_dist: chex.Numeric | None = None,
    eps: chex.Numeric = 1e-4,
) -> GradientTransformation:
    r"""DoWG's step: ``u = r̄_t² / (sqrt(v_t) + ε) · g`` (no sign flip).

    See :func:`gradtx.contrib.dowg` for the rule and the reference. Optax keeps
    this primitive out of ``optax.contrib``'s public names; so does gradtx
    (import it from :mod:`gradtx.contrib.distance_over_gradients`).

    Args:
      init_estim_sq_dist: :math:`\bar r_0^2 > 0`, the initial guess of the
        squared distance to the solution (``None``: ``eps``).
      eps: :math:`\epsilon > 0` added to the denominator.

    Returns:
      A :class:`GradientTransformation` with state :class:`DoWGState`;
      ``update`` needs ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.contrib.distance_over_gradients import scale_by_dowg
      >>> tx = scale_by_dowg(init_estim_sq_dist=4.0, eps=1e-4)
      >>> p = jnp.array([1.0, 2.0])
      >>> u, _ = tx.update(jnp.array([3.0, 4.0]), tx.init(p), p)
      >>> [round(x, 4) for x in u.tolist()]  # r̄² g / (r̄ ‖g‖ + ε) ≈ 2 g / 5
      [1.2, 1.6]
    """
    owner = "scale_by_dowg"
    if init_estim_sq_dist is not None:
        _validate.positive(owner, "init_estim_sq_dist", init_estim_sq_dist)
    _validate.positive(owner, "eps", eps)
    r0_sq = eps if init_estim_sq_dist is None else init_estim_sq_dist

    def init_fn(params):
        params = check_array_leaves(params)
        dtype = scalar_state_dtype(params)
        return DoWGState(
            init_params=jax.tree.map(jnp.copy, params),
            weighted_sq_norm_grads=jnp.zeros([], dtype),
            estim_sq_dist=jnp.asarray(r0_sq, dtype),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_state(owner, state, DoWGState)
        moved = _distance_from_start(owner, updates, params, state.init_params)
        sq_dist = jnp.maximum(state.estim_sq_dist, tree_sum_of_squares(moved))
        weighted = sq_dist * tree_sum_of_squares(updates) + state.weighted_sq_norm_grads
        step = sq_dist / (jnp.sqrt(weighted) + eps)
        new_state = DoWGState(
            init_params=state.init_params,
            weighted_sq_norm_grads=weighted.astype(state.weighted_sq_norm_grads.dtype),
            estim_sq_dist=sq_dist.astype(state.estim_sq_dist.dtype),
        )
        return _scale_updates(owner, updates, step), new_state

    return elementwise(GradientTransformation(init_fn, update_fn))


def dowg(
    learning_rate: ScalarOrSchedule = 1.0,
    init_estim_sq_dist: chex.Numeric | None = None,
    eps: chex.Numeric = 1e-4,
    weight_decay: chex.Numeric | None = None,
    mask: Any = None,
) -> GradientTransformation:
    r"""DoWG (Distance over Weighted Gradients), a parameter-free gradient descent.

    .. math::
        \bar r_t^2 &= \max\big(\bar r_{t-1}^2,\ \|\theta_t - \theta_0\|^2\big),
        \qquad v_t = v_{t-1} + \bar r_t^2\, \|g_t\|^2, \\
        \theta_{t+1} &= \theta_t - \eta_t\,
            \frac{\bar r_t^2}{\sqrt{v_t} + \epsilon}\, g_t

    with :math:`v_0 = 0`, norms over the whole tree and :math:`\eta_t` =
    ``learning_rate`` (1: DoWG proper). Weighting each squared gradient norm by
    the current squared distance makes the step adapt to smooth and non-smooth
    problems alike ("universal"), unlike DoG's plain sum.

    Reference: Khaled, Mishchenko & Jin, 2023, "DoWG Unleashed: An Efficient
    Universal Parameter-Free Gradient Descent Method".

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      init_estim_sq_dist: :math:`\bar r_0^2 > 0`, an initial guess of the
        squared distance to the solution (``None``: ``eps``).
      eps: :math:`\epsilon > 0`, in the denominator.
      weight_decay: ``None`` (none), or :math:`\lambda >= 0` added to the
        gradient as :math:`\lambda\theta_t` before DoWG's scaling.
      mask: a tree of bools (or a function of the params returning one): decay
        only where True.

    Returns:
      A :class:`GradientTransformation`; ``update`` needs ``params``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import gradtx
      >>> from gradtx.contrib import dowg
      >>> f = lambda x: jnp.sum(x**2)
      >>> opt = dowg()
      >>> params = jnp.array([1.0, 2.0, 3.0])
      >>> state = opt.init(params)
      >>> for _ in range(50):
      ...     updates, state = opt.update(jax.grad(f)(params), state, params)
      ...     params = gradtx.apply_updates(params, updates)
      >>> bool(f(params) < 1e-3)
      True
    """
    _check_decay("dowg", learning_rate, weight_decay)
    if init_estim_sq_dist is not None:
        _validate.positive("dowg", "init_estim_sq_dist", init_estim_sq_dist)
    _validate.positive("dowg", "eps", eps)
    return chain(
        identity() if weight_decay is None else add_decayed_weights(weight_decay, mask),
        scale_by_dowg(init_estim_sq_dist, eps),
        scale_by_learning_rate(learning_rate),
    )
