"""Skipping the steps whose loss or gradient norm spikes: skip_on_spike.

The wrapper watches one or two scalar signals of each step, the loss (passed
to ``update`` as ``value=``) and the global norm of the incoming gradients,
keeps an exponentially weighted running mean and variance of each in its
state, and skips the step (zero updates, inner state untouched) when a signal
lies more than ``threshold`` standard deviations above its running mean.
Everything is decided on the device (``jnp.where`` and one ``lax.cond``):
no host callback, no synchronisation.

The scalar maths (:func:`_observe`, :func:`_zscore`) is written for one
signal; :func:`skip_on_spike` applies it to each watched signal.
"""

from collections.abc import Sequence
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from .._core import validation as _validate
from .._core.base import GradientTransformation, check_state, with_extra_args_support
from .._core.lifting import global_norm
from .._core.maths import safe_increment
from .._core.traits import composed
from ..combinators.chain import check_transforms
from .conditionals import keep_dtypes, zeros_like_output

_SIGNALS = ("loss", "grad_norm")
_TINY = float(jnp.finfo(jnp.float32).tiny)


def _observe(x, mean, var, count, decay):
    """The running mean and variance after observing ``x``.

    The weight of the new value is ``α = max(1 - decay, 1 / (count + 1))``:
    the exact mean and (population) variance of the values seen while
    ``count + 1 <= 1 / (1 - decay)``, an exponential moving average after.
    """
    alpha = jnp.maximum(1.0 - decay, 1.0 / (count + 1.0))
    delta = x - mean
    return mean + alpha * delta, (1.0 - alpha) * (var + alpha * delta * delta)


def _zscore(x, mean, var, count, min_relative_std):
    """``(x - mean) / std``, ``std`` at least ``min_relative_std * |mean|``
    (and the smallest normal float32); 0 before any observation."""
    std = jnp.maximum(jnp.sqrt(var), min_relative_std * jnp.abs(mean))
    z = (x - mean) / jnp.maximum(std, _TINY)
    return jnp.where(count > 0, z, jnp.zeros_like(z))


class SkipOnSpikeState(NamedTuple):
    """The running statistics, the skip counters and the inner state.

    Attributes:
      steps: calls to ``update`` since ``init`` (int32).
      count: values in the running statistics (int32): the accepted steps
        since ``init``, or since the statistics restarted (see
        ``max_consecutive_skips``).
      loss_mean, loss_var: running mean and variance of the loss (float32;
        they stay 0 while the loss is not watched).
      norm_mean, norm_var: running mean and variance of the global norm of
        the incoming updates (float32).
      loss_zscore, norm_zscore: this step's z-scores against the statistics
        before it (float32; 0 for a signal not watched, and before any value
        was observed).
      skipped: whether this step was skipped (bool).
      consecutive_skipped: steps skipped in a row up to this one (int32).
      total_skipped: steps skipped since ``init`` (int32), never reset.
      inner_state: the inner transformation's state.
    """

    steps: chex.Array
    count: chex.Array
    loss_mean: chex.Array
    loss_var: chex.Array
    norm_mean: chex.Array
    norm_var: chex.Array
    loss_zscore: chex.Array
    norm_zscore: chex.Array
    skipped: chex.Array
    consecutive_skipped: chex.Array
    total_skipped: chex.Array
    inner_state: Any


def _check_watch(owner: str, watch: Any) -> tuple[str, ...] | None:
    if watch is None:
        return None
    names = (watch,) if isinstance(watch, str) else watch
    ok = isinstance(names, Sequence) and all(isinstance(n, str) for n in names)
    if (
        not ok
        or not names
        or set(names) - set(_SIGNALS)
        or len(set(names)) < len(names)
    ):
        raise ValueError(
            f"{owner}: `watch` must name one or both of 'loss' and 'grad_norm' "
            f"(each once), got {watch!r}."
        )
    return tuple(names)


def _loss_of(owner: str, watch: tuple[str, ...] | None, extra_args: dict) -> Any:
    """The loss as a float32 scalar, or None when it is not watched."""
    value = extra_args.get("value")
    if watch is not None and "loss" not in watch:
        return None
    if value is None:
        if watch is None:
            return None
        raise TypeError(
            f"{owner}: `watch` includes 'loss', so `update` needs this step's "
            "loss as the keyword argument `value=`; got none."
        )
    value = jnp.asarray(value)
    if value.shape != () or not jnp.issubdtype(value.dtype, jnp.floating):
        raise ValueError(
            f"{owner}: `value` must be a real scalar (this step's loss), got "
            f"an array of dtype {value.dtype} and shape {value.shape}."
        )
    return value.astype(jnp.float32)


def skip_on_spike(
    inner: GradientTransformation,
    *,
    threshold: chex.Numeric = 6.0,
    warmup_steps: int = 100,
    decay: chex.Numeric = 0.99,
    max_consecutive_skips: int | None = None,
    watch: str | Sequence[str] | None = None,
    min_relative_std: chex.Numeric = 1e-3,
) -> GradientTransformation:
    r"""Skips the steps whose loss or gradient norm spikes above its running mean.

    Each watched signal :math:`x_t` (the loss given as ``update(...,
    value=loss)``, the global norm of the incoming updates) is compared with
    the running mean :math:`\mu` and variance :math:`\sigma^2` of the values
    of the steps accepted before it:

    .. math::
        z_t = \frac{x_t - \mu}{\max(\sigma,\ \epsilon_{\rm rel} |\mu|)},
        \qquad \text{spike} \iff n \ge n_{\rm warmup}
        \ \text{and}\ z_t > \text{threshold}

    (one-sided: a sudden drop is not a spike). A non-finite signal is always
    a spike, warm-up or not. The step is skipped when any watched signal
    spikes: the updates are zeros (dtypes of the inner's output), the inner
    state is kept exactly as it was, and the statistics do **not** take in
    the outlier. An accepted step updates them with weight
    :math:`\alpha = \max(1 - \text{decay}, 1/(n+1))`, :math:`n` the count of
    values seen:

    .. math::
        \delta = x_t - \mu, \quad \mu \leftarrow \mu + \alpha\delta, \quad
        \sigma^2 \leftarrow (1 - \alpha)(\sigma^2 + \alpha\delta^2),
        \quad n \leftarrow n + 1

    (the exact mean and variance of the first :math:`1/(1-\text{decay})`
    values, an exponential moving average after). During warm-up
    (:math:`n <` ``warmup_steps``) no finite step is skipped and the
    statistics accumulate.

    After ``max_consecutive_skips`` skipped steps in a row, the next finite
    spike is applied instead and the statistics restart from it (:math:`n =
    1`, so a warm-up follows): the signal has moved to a new level. A
    non-finite step is never applied; ``consecutive_skipped`` keeps growing
    and is the training loop's signal to stop or restore a checkpoint.

    The rule is OLMo-core's ``SkipStepOptimizer`` and Levanter's skip-step
    wrapper (one-sided z-score of the loss and of the gradient norm), also
    MaxText's skip-step-on-spike option; they keep a window of recent
    values, this keeps an exponentially weighted mean and variance (a
    fixed-size state) and leaves the outliers out of it.

    Args:
      inner: the optimizer to protect; wrap the whole optimizer, so that the
        norm watched is that of the raw gradients.
      threshold: the z-score (> 0) above which a signal is a spike.
      warmup_steps: accepted steps (>= 1) before anything is skipped.
      decay: the statistics' decay, in [0, 1); about the last ``1/(1 -
        decay)`` accepted values count.
      max_consecutive_skips: ``None`` (skip every spike), or the number (>=
        1) of spikes skipped in a row before one is applied and the
        statistics restart.
      watch: ``'loss'``, ``'grad_norm'``, or both. ``None`` (default):
        the gradient norm, and the loss on the steps where ``update`` is
        given ``value=``. Naming ``'loss'`` makes ``value=`` required.
      min_relative_std: floor of the standard deviation, relative to the
        running mean (>= 0), so that a near-constant signal does not turn
        every small rise into a spike.

    Returns:
      A :class:`GradientTransformation` with state :class:`SkipOnSpikeState`;
      ``update`` passes its extra keyword arguments (``value`` included) on
      to ``inner``.

    References:
      OLMo-core, ``olmo_core.optim.SkipStepOptimizer`` (AI2, 2024);
      Levanter, ``SkipStepConfig`` (Stanford CRFM, 2025); MaxText's
      skip-step-on-spike option (Google).

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import sgd, skip_on_spike
      >>> tx = skip_on_spike(sgd(0.1), threshold=3.0, warmup_steps=3)
      >>> state = tx.init(jnp.zeros(2))
      >>> for loss in [1.0, 1.1, 0.9, 1.0, 50.0]:
      ...     u, state = tx.update(jnp.ones(2), state, value=loss)
      >>> u.tolist(), bool(state.skipped), int(state.total_skipped)
      ([0.0, 0.0], True, 1)
    """
    owner = "skip_on_spike"
    check_transforms(owner, [inner])
    _validate.positive(owner, "threshold", threshold)
    _validate.integer(owner, "warmup_steps", warmup_steps, low=1, array_ok=True)
    _validate.decay(owner, "decay", decay)
    if max_consecutive_skips is not None:
        _validate.integer(
            owner, "max_consecutive_skips", max_consecutive_skips, low=1, array_ok=True
        )
    watch = _check_watch(owner, watch)
    _validate.non_negative(owner, "min_relative_std", min_relative_std)
    watch_norm = watch is None or "grad_norm" in watch
    inner = with_extra_args_support(inner)

    def init_fn(params):
        f32 = jnp.zeros([], jnp.float32)
        i32 = jnp.zeros([], jnp.int32)
        return SkipOnSpikeState(
            *(i32, i32), *(f32,) * 6, jnp.array(False), *(i32, i32), inner.init(params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        check_state(owner, state, SkipOnSpikeState)
        count = state.count
        signals = {
            "loss": (
                _loss_of(owner, watch, extra_args),
                state.loss_mean,
                state.loss_var,
            ),
            "norm": (
                global_norm(updates) if watch_norm else None,
                state.norm_mean,
                state.norm_var,
            ),
        }
        zs, outlier, finite = {}, jnp.array(False), jnp.array(True)
        for name, (x, mean, var) in signals.items():
            if x is None:
                zs[name] = jnp.zeros([], jnp.float32)
                continue
            zs[name] = _zscore(x, mean, var, count, min_relative_std)
            outlier = outlier | ~(zs[name] <= threshold)
            finite = finite & jnp.isfinite(x)
        skip = ~finite | (outlier & (count >= warmup_steps))
        if max_consecutive_skips is not None:
            force = skip & finite & (state.consecutive_skipped >= max_consecutive_skips)
            skip = skip & ~force
            count = jnp.where(force, jnp.zeros_like(count), count)
        new_stats = []
        for x, mean, var in signals.values():
            if x is None:
                new_stats += [mean, var]
                continue
            mean = jnp.where(count > 0, mean, 0.0)
            m, v = _observe(x, mean, jnp.where(count > 0, var, 0.0), count, decay)
            new_stats += [jnp.where(skip, mean, m), jnp.where(skip, var, v)]
        new_stats = [s.astype(jnp.float32) for s in new_stats]

        def run(u, s, p):
            new_u, new_s = inner.update(u, s, p, **extra_args)
            return new_u, keep_dtypes(new_s, s)

        def hold(u, s, p):
            return zeros_like_output(lambda *a: run(*a)[0], u, s, p), s

        # The inner step waits for the decision (as after a clip): XLA:CPU
        # would otherwise fuse the norm's reduction with its loops.
        updates, skip = jax.lax.optimization_barrier((updates, skip))
        updates, inner_state = jax.lax.cond(
            skip, hold, run, updates, state.inner_state, params
        )
        zero = jnp.zeros([], jnp.int32)
        return updates, SkipOnSpikeState(
            steps=safe_increment(state.steps),
            count=jnp.where(skip, count, safe_increment(count)),
            loss_mean=new_stats[0],
            loss_var=new_stats[1],
            norm_mean=new_stats[2],
            norm_var=new_stats[3],
            loss_zscore=zs["loss"].astype(jnp.float32),
            norm_zscore=zs["norm"].astype(jnp.float32),
            skipped=skip,
            consecutive_skipped=jnp.where(
                skip, safe_increment(state.consecutive_skipped), zero
            ),
            total_skipped=jnp.where(
                skip, safe_increment(state.total_skipped), state.total_skipped
            ),
            inner_state=inner_state,
        )

    return composed(GradientTransformation(init_fn, update_fn), [inner])
