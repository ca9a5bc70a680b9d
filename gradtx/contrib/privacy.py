r"""Differentially private aggregation of per-example gradients (DP-SGD).

:func:`differentially_private_aggregate` turns a batch of per-example
gradients (every leaf with the examples on axis 0) into one noisy mean: each
example's gradient is clipped to a global L2 norm, the clipped gradients are
summed, Gaussian noise is added and the sum divided by the batch size.
:func:`dpsgd` chains it with momentum and the learning rate.

The noise follows Optax's key scheme, so the same key gives the same numbers:
at each step the state's key is split into ``1 + (number of leaves)`` keys;
the first becomes the next state's key and the others, in leaf order, draw
each leaf's standard normal noise.
"""

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule, check_state, identity
from .._core.lifting import map_leaves
from ..combinators.chain import chain
from ..transforms.block_clipping import per_example_global_norm_clip
from ..transforms.moments import trace
from ..transforms.noise import key_from
from ..transforms.scaling import learning_rate_step

__all__ = [
    "DifferentiallyPrivateAggregateState",
    "differentially_private_aggregate",
    "dpsgd",
]

_LOW_PRECISION = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


class DifferentiallyPrivateAggregateState(NamedTuple):
    """The PRNG key of the next step's noise (Optax's field name)."""

    rng_key: chex.PRNGKey


def differentially_private_aggregate(
    l2_norm_clip: chex.Numeric,
    noise_multiplier: chex.Numeric,
    key: Any = None,
    *,
    seed: int | None = None,
) -> GradientTransformation:
    r"""The DP-SGD aggregate: clip each example's gradient, sum, add noise, average.

    With :math:`g_n` the gradient of example :math:`n = 1..B` (all leaves
    together), :math:`C` = ``l2_norm_clip``, :math:`\sigma` =
    ``noise_multiplier`` and :math:`\xi_t \sim N(0, I)` drawn afresh at each
    step:

    .. math::
        u_t = \frac{1}{B}\Big(\sum_{n=1}^{B} g_n
            \min\Big(1, \frac{C}{\|g_n\|}\Big) + \sigma C\, \xi_t\Big)

    (an all-zero example is kept, factor 1). The input ``updates`` are
    per-example gradients: every leaf has the examples on axis 0 (e.g. from
    ``jax.vmap(jax.grad(loss), in_axes=(None, 0))``); the output has the
    params' shapes, so this must come first in a chain, and gradient
    accumulation (``MultiSteps``, ``apply_every``) would average noisy means
    instead of clipping per example.

    Noise for bfloat16/float16 leaves is drawn in float32 and the result
    cast back; other leaves draw in their own dtype, with Optax's keys (see
    the module docstring), so a given key gives Optax's numbers.

    Reference: Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar & Zhang,
    2016, "Deep Learning with Differential Privacy"
    (https://arxiv.org/abs/1607.00133).

    Args:
      l2_norm_clip: :math:`C` >= 0, the largest L2 norm of one example's
        gradient.
      noise_multiplier: :math:`\sigma` >= 0, the noise's standard deviation in
        units of :math:`C`.
      key: a PRNG key (``jax.random.key``, or a raw ``jax.random.PRNGKey``)
        or an integer seed. ``None`` warns and uses seed 0, as Optax does.
      seed: deprecated spelling of ``key`` (an integer seed), kept for Optax
        compatibility; warns.

    Returns:
      A :class:`~gradtx.GradientTransformation` with state
      :class:`DifferentiallyPrivateAggregateState`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from gradtx.contrib import differentially_private_aggregate
      >>> tx = differentially_private_aggregate(1.0, 0.0, key=jax.random.key(0))
      >>> per_example = jnp.array([[3.0, 4.0], [0.3, 0.4]])  # norms 5 and 0.5
      >>> u, _ = tx.update(per_example, tx.init(jnp.zeros(2)))
      >>> [round(x, 4) for x in u.tolist()]  # ((0.6, 0.8) + (0.3, 0.4)) / 2
      [0.45, 0.6]
    """
    owner = "differentially_private_aggregate"
    _validate.non_negative(owner, "l2_norm_clip", l2_norm_clip)
    _validate.non_negative(owner, "noise_multiplier", noise_multiplier)
    key = key_from(owner, key, seed)
    std = l2_norm_clip * noise_multiplier

    def init_fn(params):
        del params
        return DifferentiallyPrivateAggregateState(rng_key=key)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, DifferentiallyPrivateAggregateState)
        clipped, _ = per_example_global_norm_clip(updates, l2_norm_clip)
        batch = jax.tree.leaves(updates)[0].shape[0]
        leaves, treedef = jax.tree.flatten(clipped)
        next_key, *keys = jax.random.split(state.rng_key, len(leaves) + 1)
        noise = [
            jax.random.normal(
                k,
                x.shape,
                jnp.float32 if x.dtype in _LOW_PRECISION else x.dtype,
            )
            for k, x in zip(keys, leaves, strict=True)
        ]
        out = map_leaves(
            lambda s, n: (s + std * n) / batch,
            clipped,
            treedef.unflatten(noise),
            names=["noise"],
            owner=owner,
        )
        return out, DifferentiallyPrivateAggregateState(rng_key=next_key)

    return GradientTransformation(init_fn, update_fn)


def dpsgd(
    learning_rate: ScalarOrSchedule,
    l2_norm_clip: chex.Numeric,
    noise_multiplier: chex.Numeric,
    seed: int,
    momentum: chex.Numeric | None = None,
    nesterov: bool = False,
) -> GradientTransformation:
    r"""DP-SGD: SGD (with optional momentum) on the differentially private aggregate.

    .. math::
        \tilde g_t = \frac{1}{B}\Big(\sum_{n=1}^{B} g_{t,n}
            \min\Big(1, \frac{C}{\|g_{t,n}\|}\Big) + \sigma C\, \xi_t\Big),
        \quad
        v_t = \tilde g_t + \mu v_{t-1}, \quad
        \theta_t = \theta_{t-1} - \eta_t v_t

    (:math:`v_t = \tilde g_t` without momentum; Nesterov:
    :math:`\theta_t = \theta_{t-1} - \eta_t(\tilde g_t + \mu v_t)`).
    ``update`` takes per-example gradients, every leaf with the examples on
    axis 0; see :func:`differentially_private_aggregate`, whose noise keys
    start from ``jax.random.key(seed)`` (Optax's, so the same seed gives
    Optax's numbers).

    Reference: Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar & Zhang,
    2016, "Deep Learning with Differential Privacy"
    (https://arxiv.org/abs/1607.00133).

    Args:
      learning_rate: :math:`\eta`, a number >= 0 or a schedule.
      l2_norm_clip: :math:`C` >= 0, the largest L2 norm of one example's
        gradient.
      noise_multiplier: :math:`\sigma` >= 0, the noise's standard deviation in
        units of :math:`C`.
      seed: the integer seed of the noise (or a PRNG key).
      momentum: :math:`\mu` in [0, 1], or ``None`` for none.
      nesterov: use Nesterov's momentum.

    Returns:
      A :class:`~gradtx.GradientTransformation` (a chain whose first state is
      a :class:`DifferentiallyPrivateAggregateState`).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import gradtx
      >>> from gradtx.contrib import dpsgd
      >>> loss = lambda w, x: jnp.sum((w - x) ** 2)
      >>> data = jnp.array([[1.0, 2.0], [1.2, 1.8], [0.8, 2.2], [1.0, 2.0]])
      >>> opt = dpsgd(0.1, l2_norm_clip=1.0, noise_multiplier=0.1, seed=0)
      >>> w = jnp.zeros(2)
      >>> state = opt.init(w)
      >>> for _ in range(200):
      ...     g = jax.vmap(jax.grad(loss), in_axes=(None, 0))(w, data)
      ...     u, state = opt.update(g, state, w)
      ...     w = gradtx.apply_updates(w, u)
      >>> [round(x, 1) for x in w.tolist()]  # the mean of the data
      [1.0, 2.0]
    """
    owner = "dpsgd"
    _validate.non_negative(owner, "l2_norm_clip", l2_norm_clip)
    _validate.non_negative(owner, "noise_multiplier", noise_multiplier)
    if momentum is not None:
        _validate.decay(owner, "momentum", momentum, allow_one=True)
    _validate.flag(owner, "nesterov", nesterov)
    return chain(
        differentially_private_aggregate(l2_norm_clip, noise_multiplier, key=seed),
        trace(decay=momentum, nesterov=nesterov)
        if momentum is not None
        else identity(),
        learning_rate_step(owner, learning_rate),
    )
