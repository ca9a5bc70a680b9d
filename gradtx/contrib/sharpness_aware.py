r"""Sharpness-Aware Minimization (SAM) as a wrapper of two optimizers.

SAM takes the gradient not at the parameters but at an adversarial point near
them, reached by a few ascent steps of an inner (adversarial) optimizer, and
gives that gradient to an outer optimizer that updates the true parameters.
:func:`sam` keeps Optax's structure and state (:class:`SAMState`) so that code
written for Optax's SAM state works unchanged.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from .._core import validation as _validate
from .._core.base import GradientTransformation, OptState, Params, check_state

__all__ = ["SAMState", "sam"]


class SAMState(NamedTuple):
    """The state of :func:`sam` (Optax's field names).

    Attributes:
      steps_since_sync: adversarial steps taken since the last outer update
        (int32).
      opt_state: the outer optimizer's state.
      adv_state: the adversarial optimizer's state.
      cache: the true parameters while the adversarial steps run (``None``
        in opaque mode).
    """

    steps_since_sync: chex.Array
    opt_state: OptState
    adv_state: OptState
    cache: Params | None


def _select(pred: chex.Array, on_true: Any, on_false: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def _negate(tree: Any) -> Any:
    return jax.tree.map(lambda x: -x, tree)


def sam(
    optimizer: GradientTransformation,
    adv_optimizer: GradientTransformation,
    sync_period: int = 2,
    reset_state: bool = True,
    opaque_mode: bool = False,
    batch_axis_name: str | None = None,
) -> GradientTransformation:
    r"""SAM: the outer optimizer steps with the gradient at an adversarial point.

    With :math:`k` = ``sync_period``, :math:`A` the adversarial optimizer
    (whose updates are *added* with their sign flipped, so a descent optimizer
    such as normalised SGD ascends) and :math:`O` the outer one, a cycle of
    :math:`k` calls is:

    .. math::
        \tilde\theta_0 = \theta, \qquad
        \tilde\theta_{i} = \tilde\theta_{i-1} - A(\nabla L(\tilde\theta_{i-1}))
        \quad (i = 1, \dots, k-1),
        \\
        \theta \leftarrow \theta + O(\nabla L(\tilde\theta_{k-1}))

    With :math:`A` = normalise then SGD(:math:`\rho`), :math:`O` = SGD and
    :math:`k = 2` this is the paper's rule :math:`\theta \leftarrow \theta -
    \eta \nabla L(\theta + \rho \nabla L(\theta)/\|\nabla L(\theta)\|)`.

    In the default (transparent) mode every call to ``update`` is one step of
    the cycle: the first :math:`k - 1` calls return the adversarial steps,
    and the :math:`k`-th returns the step from the adversarial point back to
    the cached :math:`\theta` plus the outer update, so the parameters seen
    by the caller visit the adversarial points. With ``opaque_mode`` each call
    runs the whole cycle inside ``update``, which then needs the keyword
    argument ``grad_fn(params, i) -> gradients`` (called :math:`k - 1` times)
    and returns the outer update only; use it when each forward pass has side
    effects (batch-norm statistics). ``reset_state`` re-initialises the
    adversarial optimizer's state at the end of each cycle.

    Difference from Optax: with ``sync_period=1`` (no adversarial step) Optax
    returns to the params of the previous call before each outer step
    (:math:`\theta_{t+1} = \theta_{t-1} + O(\nabla L(\theta_t))`, its cache
    is one call stale); gradtx's is then the outer optimizer itself. For
    ``sync_period >= 2`` the numbers are Optax's.

    Reference: Foret, Kleiner, Mobahi & Neyshabur, 2021, "Sharpness-Aware
    Minimization for Efficiently Improving Generalization"
    (https://arxiv.org/abs/2010.01412).

    Args:
      optimizer: :math:`O`, the outer optimizer.
      adv_optimizer: :math:`A`, the adversarial optimizer.
      sync_period: :math:`k` >= 1, the calls per cycle (one outer update).
      reset_state: reset the adversarial state after each outer update.
      opaque_mode: run the adversarial steps inside ``update``.
      batch_axis_name: in opaque mode, the mapped axis over which to average
        the adversarial gradients (``jax.lax.pmean``), if any.

    Returns:
      A :class:`~gradtx.GradientTransformation` with state :class:`SAMState`;
      its ``update`` needs ``params`` (and ``grad_fn=`` in opaque mode).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import gradtx
      >>> from gradtx.contrib import sam
      >>> adv = gradtx.chain(gradtx.normalize_by_update_norm(eps=0.0),
      ...                    gradtx.sgd(0.05))
      >>> opt = sam(gradtx.sgd(0.1), adv)  # sync_period=2: the paper's SAM
      >>> f = lambda x: jnp.sum((x - 1.0) ** 2)
      >>> x = jnp.zeros(2)
      >>> state = opt.init(x)
      >>> for _ in range(100):  # 50 SAM steps
      ...     u, state = opt.update(jax.grad(f)(x), state, x)
      ...     x = gradtx.apply_updates(x, u)
      >>> [round(v, 2) for v in x.tolist()]
      [1.0, 1.0]
    """
    owner = "sam"
    _validate.integer(owner, "sync_period", sync_period, low=1)
    _validate.flag(owner, "reset_state", reset_state)
    _validate.flag(owner, "opaque_mode", opaque_mode)
    if batch_axis_name is not None and not isinstance(batch_axis_name, str):
        raise TypeError(
            f"{owner}: `batch_axis_name` must be a string or None, got "
            f"{batch_axis_name!r}."
        )

    def init_fn(params):
        return SAMState(
            steps_since_sync=jnp.zeros([], jnp.int32),
            opt_state=optimizer.init(params),
            adv_state=adv_optimizer.init(params),
            cache=None if opaque_mode else params,
        )

    def transparent_update(updates, state, params=None, **extra_args):
        del extra_args
        check_state(owner, state, SAMState)
        first = state.steps_since_sync == 0
        last = state.steps_since_sync == sync_period - 1
        adv_updates, adv_state = adv_optimizer.update(updates, state.adv_state, params)
        adv_updates = _negate(adv_updates)
        # The true params: cached at a cycle's first call (this one, if k = 1).
        cache = _select(first, params, state.cache)
        outer, opt_state = optimizer.update(updates, state.opt_state, cache)
        # Back from the adversarial point to the cached params, then the step.
        outer = jax.tree.map(lambda c, p, u: c - p + u, cache, params, outer)
        if reset_state:
            adv_state = _select(last, adv_optimizer.init(params), adv_state)
        else:
            adv_state = _select(last, state.adv_state, adv_state)
        new_state = SAMState(
            steps_since_sync=(state.steps_since_sync + 1) % sync_period,
            opt_state=_select(last, opt_state, state.opt_state),
            adv_state=adv_state,
            cache=cache,
        )
        return _select(last, outer, adv_updates), new_state

    def opaque_update(
        updates,
        state,
        params=None,
        *,
        grad_fn: Callable[[Params, int], Any] | None = None,
        **extra_args,
    ):
        del extra_args
        check_state(owner, state, SAMState)
        if grad_fn is None:
            raise ValueError(
                f"{owner}: with `opaque_mode=True`, `update` needs the keyword "
                "argument `grad_fn(params, i) -> gradients`."
            )
        adv_params, adv_state = params, state.adv_state
        for i in range(sync_period - 1):
            step, adv_state = adv_optimizer.update(updates, adv_state, adv_params)
            adv_params = jax.tree.map(lambda p, s: p - s, adv_params, step)
            adv_params = jax.tree.map(
                lambda p, q: jnp.asarray(p).astype(jnp.result_type(q)),
                adv_params,
                params,
            )
            updates = grad_fn(adv_params, i)
            if batch_axis_name is not None:
                updates = jax.lax.pmean(updates, axis_name=batch_axis_name)
        if reset_state:
            adv_state = adv_optimizer.init(params)
        updates, opt_state = optimizer.update(updates, state.opt_state, params)
        return updates, SAMState(
            steps_since_sync=jnp.zeros([], jnp.int32),
            opt_state=opt_state,
            adv_state=adv_state,
            cache=None,
        )

    update_fn = opaque_update if opaque_mode else transparent_update
    return GradientTransformation(init_fn, update_fn)
