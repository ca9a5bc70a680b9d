"""Hyperparameters kept in the optimizer state: ``inject_hyperparams``.

``inject_hyperparams(factory)(**kwargs)`` builds ``factory(**kwargs)`` anew at
every step from hyperparameters held in the state, so they can be read back
(``state.hyperparams["learning_rate"]``), scheduled (a callable becomes a
schedule of the step) and changed between steps — all without recompiling a
jitted step, since they are arrays in the state, not constants in the trace.

Differences from Optax, all deliberate:

* float hyperparameters are stored in at least float32. Optax casts them to the
  params' dtype when ``hyperparam_dtype`` is None, so with bfloat16 params Adam's
  ``b2 = 0.999`` becomes 1.0 and the bias correction divides 0 by 0 (NaN);
* a concrete invalid hyperparameter raises when the optimizer is built (the
  factory is called once, with schedules at step 0), not at the first ``init``;
* NumPy scalars (``np.float32(0.9)``) are hyperparameters, as Python numbers
  are; dtypes (``mu_dtype=jnp.bfloat16``, a class hence callable) are static
  arguments, not schedules;
* a scheduled hyperparameter keeps the dtype it had at ``init`` (Optax stores
  whatever dtype the schedule returns at each step), except that a float value
  after an integer one stays a float, as in Optax, instead of being truncated.
"""

import functools
import inspect
import warnings
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import (
    GradientTransformation,
    OptState,
    check_state,
    with_extra_args_support,
)
from .._core.traits import composed

_NUMERIC = (int, float, np.number, np.ndarray, jax.Array)


class InjectHyperparamsState(NamedTuple):
    """Optax's earlier state layout, kept for code that names the class.

    :func:`inject_hyperparams` returns :class:`InjectStatefulHyperparamsState`
    (as Optax does since 0.1.9).
    """

    count: chex.Array
    hyperparams: dict[str, chex.Array]
    inner_state: OptState


class InjectStatefulHyperparamsState(NamedTuple):
    """Step count, current hyperparameters, schedule states, inner state."""

    count: chex.Array
    hyperparams: dict[str, chex.Array]
    hyperparams_states: dict[str, Any]
    inner_state: OptState


class WrappedScheduleState(NamedTuple):
    """The number of steps a :class:`WrappedSchedule` has been advanced."""

    count: chex.Array


class WrappedSchedule:
    """A schedule ``step -> value`` seen as a stateful schedule.

    Stateful schedules have ``init() -> state``, ``update(state, **extra_args)
    -> state`` and ``__call__(state, **extra_args) -> value``; this one's state
    is the step count and its value ``schedule_fn(count)``.
    """

    def __init__(self, schedule_fn: Callable[[chex.Numeric], chex.Numeric]):
        if not callable(schedule_fn):
            raise TypeError(
                f"WrappedSchedule: `schedule_fn` must be callable, got {schedule_fn!r}."
            )
        self.schedule_fn = schedule_fn

    def init(self) -> WrappedScheduleState:
        return WrappedScheduleState(count=jnp.zeros([], jnp.int32))

    def update(self, state: WrappedScheduleState, **extra_args) -> WrappedScheduleState:
        del extra_args
        return WrappedScheduleState(count=_maths.safe_increment(state.count))

    def __call__(self, state: WrappedScheduleState, **extra_args) -> chex.Numeric:
        del extra_args
        return self.schedule_fn(state.count)


def _is_stateful_schedule(value: Any) -> bool:
    return callable(value) and all(
        callable(getattr(value, m, None)) for m in ("init", "update")
    )


def _float_default(tree: Any) -> jnp.dtype:
    """float32, or the widest float dtype in ``tree`` when it is wider."""
    dtype = jnp.dtype(jnp.float32)
    for leaf in jax.tree.leaves(tree):
        leaf_dtype = jnp.result_type(leaf)
        if jnp.issubdtype(leaf_dtype, jnp.floating):
            dtype = jnp.promote_types(dtype, leaf_dtype)
    return jax.dtypes.canonicalize_dtype(dtype)


def _as_hyperparam(value: Any, default: jnp.dtype, forced: Any) -> chex.Array:
    """``value`` as a strongly typed array; floats in ``forced`` or >= ``default``.

    A Python number or weakly typed array (a value the user wrote into the
    state) takes ``default``; a float array keeps its own dtype when wider.
    Integers stay integers; PRNG keys (typed ``jax.random.key`` or raw
    ``jax.random.PRNGKey`` uint32 arrays) are kept as they are.
    """
    value = jnp.asarray(value)
    dtype = value.dtype
    if jax.dtypes.issubdtype(dtype, jax.dtypes.extended):
        return value  # a typed PRNG key (``jax.random.key``): passed on intact
    if jnp.issubdtype(dtype, jnp.floating):
        if forced is not None:
            dtype = forced
        elif getattr(value, "weak_type", False):
            dtype = default
        else:
            dtype = jnp.promote_types(default, dtype)
    return jnp.asarray(value, jax.dtypes.canonicalize_dtype(dtype))


def _keep_dtype(value: chex.Array, old: chex.Array) -> chex.Array:
    """A schedule's new ``value`` in the dtype the state held, ``old``'s.

    Unless that would drop its fraction: a float value after an integer one
    (a stateful schedule whose int32 state a float was added to) keeps its
    float dtype, as in Optax, rather than being truncated (0.3 → 0).
    """
    if jnp.issubdtype(value.dtype, jnp.floating) and not jnp.issubdtype(
        old.dtype, jnp.inexact
    ):
        return value
    return value.astype(old.dtype)


def _exact_complements(numeric: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{name: (h0, c0)}`` for each Python float ``d`` the state holds rounded.

    ``h0`` is ``d`` in float32 (what init stores) and ``c0 = f32(1 − d)``
    rounded from double precision, the complement the plain optimizer uses.
    Floats for which ``1 − h0`` is ``c0`` anyway (dyadic ``d``) are left out.
    Computed once per built optimizer, from its arguments: constants of the
    transformation, like the Python floats of a plain optimizer.
    """
    out = {}
    for k, d in numeric.items():
        if not isinstance(d, (float, np.floating)):
            continue
        h0 = np.asarray(d, np.float32)
        c0 = np.asarray(1.0 - float(d), np.float32)
        if c0 != np.float32(1) - h0:
            out[k] = (h0, c0)
    return out


def _reads_complements(factory: Callable) -> bool:
    """Whether ``factory`` is gradtx's own, whose maths takes ``1 − x`` from
    :func:`gradtx._core.maths.one_minus` and accepts a ``Complemented``.

    Any other factory (Optax's, a user's) gets plain arrays, as Optax passes
    them: it may hand a hyperparameter to ``jnp`` functions, which do not
    accept a ``Complemented``.
    """
    while isinstance(factory, functools.partial):
        factory = factory.func
    module = getattr(factory, "__module__", None) or ""
    return module == "gradtx" or module.startswith("gradtx.")


def _complemented(h: chex.Array, h0: np.ndarray, c0: np.ndarray) -> chex.Array:
    """``h`` with the complement the maths reads through ``one_minus``.

    ``c0`` while the state still holds ``h0`` (compared in ``h``'s dtype);
    once another value is written into the state, ``1 − h`` in its own dtype,
    which is what a plain optimizer given that array computes. The difference
    is added under ``stop_gradient``, so derivatives with respect to ``h`` are
    those of ``1 − h``.
    """
    if not jnp.issubdtype(h.dtype, jnp.floating):
        return h
    h0, c0 = np.asarray(h0, h.dtype), np.asarray(c0, h.dtype)
    if c0 == np.asarray(1, h.dtype) - h0:
        return h  # float64 state, or a dtype with no double rounding to undo
    plain = 1 - h
    exact = plain + jax.lax.stop_gradient(c0 - plain)
    return _maths.Complemented(h, jnp.where(h == h0, exact, plain))


def _build(owner: str, inner_factory: Callable, kwargs: dict) -> Any:
    try:
        return inner_factory(**kwargs)
    except TypeError as e:
        e.add_note(
            f"{owner}: hyperparameters reach the factory as JAX arrays; an argument "
            "that must stay a Python value (a step count, a flag, a callable that "
            "is not a schedule) belongs in `static_args`."
        )
        raise


def inject_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., GradientTransformation]:
    """Moves an optimizer's hyperparameters into its state.

    Returns a factory with the signature of ``inner_factory``. The
    transformation it builds keeps every numeric argument (Python or NumPy
    number, JAX scalar) in ``state.hyperparams`` and rebuilds
    ``inner_factory(**args)`` at each step from those values, so

    * a hyperparameter can be read back, and changed between steps by writing
      ``state.hyperparams[name]`` — a jitted step does not recompile if the new
      value has the old one's dtype (write ``jnp.asarray(v, old.dtype)``; a
      Python float is weakly typed and costs one more trace);
    * any argument may be a schedule ``step -> value`` (or a stateful schedule
      with ``init``/``update``/``__call__``, e.g. :class:`WrappedSchedule`):
      its value at the current step is written to ``state.hyperparams`` before
      the update, so writing a scheduled hyperparameter has no effect;
    * the trajectory is the one of ``inner_factory(**args)``, bit for bit,
      jitted or not: also for Python floats such as ``b2=0.999`` that float32
      cannot hold (see below); after a new value is written into the state, it
      is the one of ``inner_factory`` given that value as a float32 array.
      (Where XLA folds a Python constant that is here a runtime value, it may
      fuse the same arithmetic differently: in the test table, ``muon``,
      ``sm3`` and ``lars`` agree to float32 rounding, ~1e-7 relative.)

    Booleans, ``None``, strings, dtypes and other objects are passed through
    unchanged, as are the arguments named in ``static_args`` (needed for a
    callable that is not a schedule, such as a mask function, or for an
    argument the factory uses as a Python value, such as a step count).

    Float hyperparameters are stored in float32 (or the params' dtype when that
    is wider, or a float array's own dtype when wider): never in bfloat16 or
    float16 unless ``hyperparam_dtype`` says so, since ``0.999`` would round to
    1.0. Optax casts them to the params' dtype. The float32 value is what the
    state holds: ``b2 = 0.999`` is 0.99900001287, whose float32 complement
    ``1 − b2`` is 1.3e-5 relative off the ``f32(1 − 0.999)`` that a factory
    given the Python float uses (it rounds from double precision), which is
    why Optax's injected Adam drifts from its plain Adam (optax#1532). gradtx
    remembers the Python value ``d`` when the optimizer is built (a constant
    of the transformation, as in the plain optimizer) and hands each such
    hyperparameter to a gradtx factory as a
    :class:`gradtx._core.maths.Complemented`: the state's float32 ``h`` together
    with its complement, ``f32(1 − d)`` while the state still holds
    ``f32(d)``, and ``1 − h`` once another value is written into
    ``state.hyperparams`` (writing ``f32(d)`` back restores ``f32(1 − d)``).
    Every ``1 − b2`` in gradtx's maths goes through
    :func:`gradtx._core.maths.one_minus`, which reads that complement; every
    other operation sees ``h``. The state itself is Optax's: nothing is added
    to it. A factory defined outside gradtx (Optax's, or your own) gets plain
    float32 arrays, as Optax passes them, and so the float32 complement.

    Concrete invalid values raise ``ValueError`` here, as the factory's own
    checks run once at construction (with schedules evaluated at step 0). A
    value written into the state, or produced by a schedule, later on cannot be
    checked inside ``jit`` (it is traced); outside ``jit`` the factory's checks
    run at every step.

    Args:
      inner_factory: a function returning a :class:`GradientTransformation`,
        e.g. :func:`gradtx.adam` or :func:`gradtx.scale_by_adam`.
      static_args: the name(s) of ``inner_factory``'s arguments never to treat
        as hyperparameters or schedules.
      hyperparam_dtype: a float dtype to store every float hyperparameter in
        (default: as above).

    Returns:
      A factory taking ``inner_factory``'s arguments (numbers or schedules) and
      returning a :class:`GradientTransformation` with state
      :class:`InjectStatefulHyperparamsState`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import adam
      >>> from gradtx import inject_hyperparams
      >>> opt = inject_hyperparams(adam)(learning_rate=lambda t: 0.1 / (t + 1))
      >>> state = opt.init(jnp.zeros(2))
      >>> round(float(state.hyperparams["learning_rate"]), 6)
      0.1
      >>> state.hyperparams["b2"] = jnp.asarray(0.99, jnp.float32)
      >>> updates, state = opt.update(jnp.ones(2), state)
      >>> updates, state = opt.update(jnp.ones(2), state)  # the values it used:
      >>> [round(float(state.hyperparams[k]), 6) for k in ("learning_rate", "b2")]
      [0.05, 0.99]
    """
    owner = "inject_hyperparams"
    if not callable(inner_factory):
        raise TypeError(
            f"{owner}: `inner_factory` must be callable, got {inner_factory!r}."
        )
    static = {static_args} if isinstance(static_args, str) else set(static_args)
    if not all(isinstance(s, str) for s in static):
        raise TypeError(
            f"{owner}: `static_args` must be names (str), got {static_args!r}."
        )
    signature = inspect.signature(inner_factory)
    unknown = static - set(signature.parameters)
    if unknown:
        raise ValueError(
            f"{owner}: `static_args` names {sorted(unknown)}, which are not "
            f"arguments of {getattr(inner_factory, '__name__', inner_factory)!r} "
            f"(its arguments: {list(signature.parameters)})."
        )
    forced = _validate.float_dtype(owner, "hyperparam_dtype", hyperparam_dtype)

    @functools.wraps(inner_factory)
    def wrapped_factory(*args, **kwargs) -> GradientTransformation:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        numeric, schedules, other = {}, {}, {}
        for name, value in bound.arguments.items():
            if name in static or isinstance(value, (bool, np.bool_, type, np.dtype)):
                other[name] = value
            elif _is_stateful_schedule(value):
                schedules[name] = value
            elif callable(value):
                schedules[name] = WrappedSchedule(value)
            elif isinstance(value, _NUMERIC):
                numeric[name] = value
            else:
                other[name] = value

        # Run the factory's own checks now, on the values init will store.
        first = {k: f(f.init()) for k, f in schedules.items()}
        for k, v in first.items():
            if not isinstance(v, _NUMERIC) or jnp.ndim(v) != 0:
                raise TypeError(
                    f"{owner}: `{k}` is callable, so it is taken for a schedule, "
                    f"but at step 0 it returned {v!r}, not a scalar. If it is not "
                    f"a schedule, pass static_args={k!r}."
                )
        if forced is not None:
            first = {k: _as_hyperparam(v, forced, forced) for k, v in first.items()}
            checked = {k: _as_hyperparam(v, forced, forced) for k, v in numeric.items()}
        else:
            checked = numeric
        sample = _build(owner, inner_factory, {**other, **checked, **first})
        exact = _exact_complements(numeric) if _reads_complements(inner_factory) else {}

        def init_fn(params):
            default = _float_default(params)
            states = {k: f.init() for k, f in schedules.items()}
            values = {**numeric, **{k: f(states[k]) for k, f in schedules.items()}}
            hparams = {k: _as_hyperparam(v, default, forced) for k, v in values.items()}
            inner = _build(owner, inner_factory, {**other, **hparams})
            return InjectStatefulHyperparamsState(
                count=jnp.zeros([], jnp.int32),
                hyperparams=hparams,
                hyperparams_states=states,
                inner_state=inner.init(params),
            )

        def update_fn(updates, state, params=None, **extra_args):
            check_state(owner, state, InjectStatefulHyperparamsState)
            missing = (set(numeric) | set(schedules)) - set(state.hyperparams)
            if missing:
                raise ValueError(
                    f"{owner}: `state.hyperparams` lacks {sorted(missing)}. Was the "
                    "state made by this optimizer's `init`?"
                )
            default = _float_default(updates)
            hparams = {
                k: _as_hyperparam(state.hyperparams[k], default, forced)
                for k in numeric
            }
            for k, f in schedules.items():
                old = _as_hyperparam(state.hyperparams[k], default, forced)
                value = f(state.hyperparams_states[k], **extra_args)
                hparams[k] = _keep_dtype(_as_hyperparam(value, default, forced), old)
            states = {
                k: f.update(state.hyperparams_states[k], **extra_args)
                for k, f in schedules.items()
            }
            given = dict(hparams)
            for k, (h0, c0) in exact.items():
                given[k] = _complemented(hparams[k], h0, c0)
            inner = with_extra_args_support(
                _build(owner, inner_factory, {**other, **given})
            )
            updates, inner_state = inner.update(
                updates, state.inner_state, params, **extra_args
            )
            return updates, InjectStatefulHyperparamsState(
                count=_maths.safe_increment(state.count),
                hyperparams=hparams,
                hyperparams_states=states,
                inner_state=inner_state,
            )

        return composed(GradientTransformation(init_fn, update_fn), [sample])

    return wrapped_factory


def inject_stateful_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., GradientTransformation]:
    """Deprecated alias of :func:`inject_hyperparams` (as in Optax).

    :func:`inject_hyperparams` already accepts stateful schedules. Warns with
    ``DeprecationWarning``.

    Args:
      inner_factory: a function returning a :class:`GradientTransformation`,
        e.g. :func:`gradtx.adam`.
      static_args: the name(s) of ``inner_factory``'s arguments never to treat
        as hyperparameters or schedules (default: none).
      hyperparam_dtype: a float dtype to store every float hyperparameter in
        (default: float32, or the params' dtype when wider).

    Returns:
      The factory :func:`inject_hyperparams` returns: it takes
      ``inner_factory``'s arguments and gives a transformation with state
      :class:`InjectStatefulHyperparamsState`.
    """
    warnings.warn(
        "inject_stateful_hyperparams is deprecated; use inject_hyperparams, which "
        "accepts stateful schedules too.",
        DeprecationWarning,
        stacklevel=2,
    )
    return inject_hyperparams(inner_factory, static_args, hyperparam_dtype)
