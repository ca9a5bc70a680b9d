"""Recording measurements of the updates in the state: snapshot, monitor.

These transformations leave the updates unchanged. Placed in a chain, they
see the updates as transformed so far (e.g. before clipping) and store a
measurement of them (a norm, a flag, …) in the state, where it can be read
after the step.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from .._core.base import (
    GradientTransformation,
    OptState,
    Updates,
    check_state,
    stateless,
    with_extra_args_support,
)
from ..combinators.chain import chain
from ..transforms.moments import ema


class SnapshotState(NamedTuple):
    """``{measure_name: measurement}`` of the last updates seen."""

    measurement: dict[str, Any]


def _check_measure(owner: str, name: str, measure: Any) -> None:
    if not callable(measure):
        raise TypeError(
            f"{owner}: `{name}` must be a function of the updates, got {measure!r}."
        )


def snapshot(
    measure_name: str, measure: Callable[[Updates], chex.ArrayTree]
) -> GradientTransformation:
    """Stores ``measure(updates)`` in the state under ``measure_name``.

    ``init`` stores ``measure(params)``, so the state's structure and dtypes
    are those of every later step (assuming ``measure`` of params and of
    updates agree in shape and dtype, as a norm does).

    Args:
      measure_name: the key of the measurement in ``state.measurement``.
      measure: a function of the updates returning a pytree of arrays.

    Returns:
      A :class:`GradientTransformation` with state :class:`SnapshotState`,
      leaving the updates unchanged.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import snapshot
      >>> from gradtx import global_norm
      >>> tx = snapshot("norm", global_norm)
      >>> _, state = tx.update(jnp.array([3.0, 4.0]), tx.init(jnp.zeros(2)))
      >>> float(state.measurement["norm"])
      5.0
    """
    if not isinstance(measure_name, str):
        raise TypeError(
            f"snapshot: `measure_name` must be a str, got {measure_name!r}."
        )
    _check_measure("snapshot", "measure", measure)

    def init_fn(params):
        return SnapshotState({measure_name: measure(params)})

    def update_fn(updates, state, params=None, **extra_args):
        check_state("snapshot", state, SnapshotState)
        del state, params, extra_args
        return updates, SnapshotState({measure_name: measure(updates)})

    return GradientTransformation(init_fn, update_fn)


class MonitorState(NamedTuple):
    """The last measurements (by name) and each measure's own state."""

    measurements: dict[str, chex.ArrayTree]
    measure_states: tuple[OptState, ...]


def monitor(
    measures: dict[str, GradientTransformation | Callable[[Updates], Any]],
) -> GradientTransformation:
    """Records several, possibly stateful, measurements of the updates.

    Each measure is a function of the updates (as in :func:`snapshot`) or a
    gradient transformation whose *output* is the measurement and whose state
    carries what it needs (e.g. :func:`measure_with_ema`). Extra keyword
    arguments of ``update`` reach the transformations.

    Unlike Optax, whose ``init`` leaves ``measurements`` empty (``{}``) and so
    changes the state's structure at the first step, ``init`` here fills every
    measurement with zeros of its shape and dtype, found by tracing each
    measure on the params: the state can be a ``lax.scan`` carry.

    Args:
      measures: ``{name: measure}``.

    Returns:
      A :class:`GradientTransformation` with state :class:`MonitorState`,
      leaving the updates unchanged.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import measure_with_ema, monitor
      >>> from gradtx import global_norm
      >>> tx = monitor({"norm": global_norm,
      ...               "big": measure_with_ema(lambda u: global_norm(u) > 4, 0.9)})
      >>> _, state = tx.update(jnp.array([3.0, 4.0]), tx.init(jnp.zeros(2)))
      >>> {k: round(float(v), 4) for k, v in state.measurements.items()}
      {'norm': 5.0, 'big': 1.0}
    """
    if not isinstance(measures, dict):
        raise TypeError(f"monitor: `measures` must be a dict, got {measures!r}.")
    txs = {}
    for name, measure in measures.items():
        if hasattr(measure, "init") and hasattr(measure, "update"):
            txs[name] = with_extra_args_support(measure)
        else:
            _check_measure("monitor", f"measures[{name!r}]", measure)
            txs[name] = stateless(lambda u, _, m=measure: m(u))

    def init_fn(params):
        states = tuple(tx.init(params) for tx in txs.values())

        def measure_all(p, ss):
            return {
                n: tx.update(p, s, p)[0]
                for (n, tx), s in zip(txs.items(), ss, strict=True)
            }

        shapes = jax.eval_shape(measure_all, params, states)
        zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)
        return MonitorState(zeros, states)

    def update_fn(updates, state, params=None, **extra_args):
        check_state("monitor", state, MonitorState)
        measurements, states = {}, []
        for (name, tx), s in zip(txs.items(), state.measure_states, strict=True):
            measurements[name], s = tx.update(updates, s, params, **extra_args)
            states.append(s)
        return updates, MonitorState(measurements, tuple(states))

    return GradientTransformation(init_fn, update_fn)


def measure_with_ema(
    measure: Callable[[Updates], chex.ArrayTree],
    decay: chex.Numeric,
    debias: bool = True,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    r"""A measurement of the updates, averaged over steps (for :func:`monitor`).

    .. math::
        e_t = \beta e_{t-1} + (1 - \beta) m(u_t), \qquad
        \text{output} = e_t / (1 - \beta^t) \ \text{(when debiased)}

    The output replaces the updates, so use it inside :func:`monitor`. A
    boolean or integer measurement (``norm > threshold``) is averaged as
    float32, so the state keeps one dtype (Optax starts from a boolean zero and
    switches to float after the first step).

    Args:
      measure: a function of the updates returning a pytree of arrays.
      decay: :math:`\beta`, in [0, 1) ([0, 1] without ``debias``).
      debias: divide by :math:`1 - \beta^t`.
      accumulator_dtype: dtype of the average (default: the measurement's).

    Returns:
      A :class:`GradientTransformation` (a chain of the measure and
      :func:`gradtx.ema`).
    """
    _check_measure("measure_with_ema", "measure", measure)
    averaged = ema(decay, debias, accumulator_dtype)

    def as_float(updates):
        def leaf(x):
            x = jnp.asarray(x)
            inexact = jnp.issubdtype(x.dtype, jnp.inexact)
            return x if inexact else x.astype(jnp.float32)

        return jax.tree.map(leaf, measure(updates))

    def init_fn(params):
        return averaged.init(as_float(params))

    return chain(
        stateless(lambda updates, _: as_float(updates)),
        GradientTransformation(init_fn, averaged.update),
    )
