"""Annealed Gaussian gradient noise (Neelakantan et al., 2015)."""

import warnings
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, check_state
from .._core.lifting import map_leaves, upcast
from .._core.traits import elementwise


class AddNoiseState(NamedTuple):
    """Step count (int32, saturating) and the PRNG key of the next step."""

    count: chex.Array
    rng_key: chex.Array


def as_key(owner: str, key: Any) -> chex.Array:
    """A typed PRNG key from a typed key, a raw ``uint32`` key or an int seed."""
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if isinstance(key, (jax.Array, np.ndarray)) and key.dtype == jnp.uint32:
        return jax.random.wrap_key_data(key)
    if isinstance(key, bool) or not isinstance(key, (int, np.integer, jax.Array)):
        raise TypeError(
            f"{owner}: `key` must be a PRNG key (jax.random.key) or an integer "
            f"seed, got {key!r}."
        )
    return jax.random.key(key)


def key_from(owner: str, key: Any, seed: Any) -> Any:
    """The PRNG key of a noisy transformation built with ``key=`` or the
    deprecated ``seed=`` (Optax's two spellings), warning as Optax does: a
    ``seed`` is deprecated, and neither means seed 0. Warnings point at the
    caller of ``owner``."""
    if seed is not None:
        warnings.warn(
            f"{owner}: `seed` is deprecated, pass `key` instead.",
            DeprecationWarning,
            stacklevel=3,
        )
        if key is not None:
            raise ValueError(f"{owner}: give either `key` or `seed`, not both.")
        key = seed
    if key is None:
        warnings.warn(
            f"{owner}: no `key` given; using seed 0. Pass `key=` "
            "(jax.random.key(...)) to choose the noise.",
            stacklevel=3,
        )
        key = 0
    key = as_key(owner, key)
    return key


def add_noise(
    eta: chex.Numeric,
    gamma: chex.Numeric,
    key: Any = None,
    *,
    seed: int | None = None,
) -> GradientTransformation:
    r"""Adds Gaussian noise of decaying variance: ``u = g + sqrt(η / t^γ)·ξ``.

    With :math:`t = 1, 2, \dots` the step and :math:`\xi \sim N(0, I)` drawn
    afresh at each step (one key per leaf, split from the state's key), the
    noise variance is :math:`\sigma_t^2 = \eta / t^\gamma`. Noise for
    bfloat16/float16 leaves is drawn in float32 and the sum cast back; other
    leaves draw in their own dtype, as in Optax (same numbers). For a complex
    leaf :math:`\xi` is ``jax.random.normal``'s complex normal,
    :math:`E|\xi|^2 = 1` (variance 1/2 in each of the real and imaginary
    parts). See :func:`gradtx.noisy_sgd` for the reference.

    Args:
      eta: the initial variance :math:`\eta >= 0`.
      gamma: the annealing exponent :math:`\gamma >= 0`.
      key: a PRNG key (``jax.random.key``, or a raw ``jax.random.PRNGKey``)
        or an integer seed. ``None`` warns and uses seed 0, as Optax does.
      seed: deprecated spelling of ``key`` (an integer seed), kept for Optax
        compatibility; warns.

    Returns:
      A :class:`GradientTransformation` with state :class:`AddNoiseState`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from gradtx import add_noise
      >>> tx = add_noise(eta=0.0, gamma=0.55, key=jax.random.key(0))
      >>> tx.update(jnp.ones(2), tx.init(None))[0].tolist()  # eta = 0: no noise
      [1.0, 1.0]
    """
    owner = "add_noise"
    _validate.non_negative(owner, "eta", eta)
    _validate.non_negative(owner, "gamma", gamma)
    key = key_from(owner, key, seed)

    def init_fn(params):
        del params
        return AddNoiseState(count=jnp.zeros([], jnp.int32), rng_key=key)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, AddNoiseState)
        count = _maths.safe_increment(state.count)
        std = jnp.sqrt(eta / count**gamma)
        rng_key, sample_key = jax.random.split(state.rng_key)
        leaves, treedef = jax.tree.flatten(updates)
        keys = jax.random.split(sample_key, len(leaves))
        noise = [
            jax.random.normal(k, jnp.shape(g), jnp.result_type(upcast(g)))
            for k, g in zip(keys, leaves, strict=True)
        ]
        updates = map_leaves(
            lambda g, n: g + std * n,
            updates,
            treedef.unflatten(noise),
            names=["noise"],
            owner=owner,
        )
        return updates, AddNoiseState(count=count, rng_key=rng_key)

    return elementwise(GradientTransformation(init_fn, update_fn))
