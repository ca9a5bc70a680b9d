"""Hyperparameter validation, run once when a transformation is built.

Every check names the factory, the argument, the value it got and the range it
accepts. A hyperparameter that is not concrete (a tracer: the optimizer is being
built inside ``jit`` or ``vmap``) cannot be inspected and is accepted as is; a
schedule (a callable) is checked only for being callable.
"""

import contextlib
import functools
import inspect
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import low_precision_stall as _stall
from . import maths as _maths
from . import traits as _traits
from .base import GradientTransformation


def _concrete_float(owner: str, name: str, value: Any) -> float | None:
    """The value as a Python float, or None when it is traced."""
    value = _maths.plain(value)  # inject_hyperparams' Complemented
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, bool) or not isinstance(
        value, (int, float, np.number, np.ndarray, jax.Array)
    ):
        raise TypeError(
            f"{owner}: `{name}` must be a real number or a scalar array, "
            f"got {value!r} of type {type(value).__name__}."
        )
    if np.ndim(value) != 0:
        raise ValueError(
            f"{owner}: `{name}` must be a scalar, got an array of shape "
            f"{np.shape(value)}."
        )
    if np.iscomplexobj(value):
        raise TypeError(f"{owner}: `{name}` must be real, got {value!r}.")
    return float(value)


def number(
    owner: str,
    name: str,
    value: Any,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Checks that ``value`` is a real scalar in the given interval.

    Args:
      owner: the factory's name, shown first in the message.
      name: the argument's name.
      value: the value to check (a Python number or a JAX/NumPy scalar).
      low, high: the bounds of the interval.
      low_open, high_open: whether the bound itself is excluded.

    Raises:
      TypeError: when ``value`` is not a real number.
      ValueError: when it is NaN, not a scalar or out of range.
    """
    v = _concrete_float(owner, name, value)
    if v is None:
        return
    too_low = v <= low if low_open else v < low
    too_high = v >= high if high_open else v > high
    if math.isnan(v) or too_low or too_high:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(
            f"{owner}: `{name}` must be in {lo}{low:g}, {high:g}{hi}, got {v!r}."
        )


def decay(owner: str, name: str, value: Any, *, allow_one: bool = False) -> None:
    """A decay rate: in [0, 1), or [0, 1] when ``allow_one``."""
    number(owner, name, value, low=0.0, high=1.0, high_open=not allow_one)


def non_negative(owner: str, name: str, value: Any) -> None:
    """A real number >= 0 (an epsilon, an initial accumulator value, …)."""
    number(owner, name, value, low=0.0)


def positive(owner: str, name: str, value: Any) -> None:
    """A real number > 0."""
    number(owner, name, value, low=0.0, low_open=True)


def scalar_or_schedule(owner: str, name: str, value: Any, *, low: float = 0.0) -> None:
    """A number >= ``low``, or a schedule ``step -> value`` (any callable)."""
    if callable(value):
        return
    number(owner, name, value, low=low)


def flag(owner: str, name: str, value: Any) -> None:
    """A Python bool (a boolean option switches code paths at trace time)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"{owner}: `{name}` must be True or False, got {value!r} of type "
            f"{type(value).__name__}."
        )


def integer(
    owner: str, name: str, value: Any, *, low: int = 0, array_ok: bool = False
) -> None:
    """A whole number >= ``low`` (a number of steps).

    Integral floats such as ``1e5`` are accepted, as Optax accepts them. With
    ``array_ok`` (a count used only in arithmetic, never as a shape or a
    Python branch), a 0-d JAX/NumPy integer or float array is accepted too, as
    ``inject_hyperparams`` passes it: checked when concrete, accepted as is
    when traced.
    """
    if array_ok and isinstance(value, (jax.Array, np.ndarray)):
        if isinstance(value, jax.core.Tracer):
            return
        if np.ndim(value) != 0 or not (
            jnp.issubdtype(value.dtype, jnp.integer)
            or jnp.issubdtype(value.dtype, jnp.floating)
        ):
            raise TypeError(
                f"{owner}: `{name}` must be a whole number of steps, got an "
                f"array of shape {np.shape(value)} and dtype {value.dtype}."
            )
        value = value.item()
    integral_float = (
        isinstance(value, (float, np.floating)) and float(value).is_integer()
    )
    if isinstance(value, bool) or not (
        isinstance(value, (int, np.integer)) or integral_float
    ):
        raise TypeError(
            f"{owner}: `{name}` must be a whole number of steps, got {value!r} of "
            f"type {type(value).__name__}."
        )
    if value < low:
        raise ValueError(f"{owner}: `{name}` must be >= {low}, got {value}.")


def float_dtype(
    owner: str, name: str, value: Any, *, complex_ok: bool = False
) -> jnp.dtype | None:
    """A floating dtype, canonicalised (None stays None: follow the params).

    With ``complex_ok`` (a state that holds a running sum of the gradients,
    such as ``mu_dtype``) a complex dtype is accepted too: it names the
    precision, and :func:`gradtx._core.lifting.state_dtype` gives real leaves
    the real dtype of that precision.
    """
    if value is None:
        return None
    try:
        dt = jnp.dtype(value)
    except TypeError as e:
        raise TypeError(f"{owner}: `{name}` must be a dtype, got {value!r}.") from e
    kinds = (jnp.floating, jnp.complexfloating) if complex_ok else (jnp.floating,)
    if not any(jnp.issubdtype(dt, kind) for kind in kinds):
        what = "floating or complex" if complex_ok else "floating"
        raise ValueError(f"{owner}: `{name}` must be a {what} dtype, got {dt.name}.")
    return jax.dtypes.canonicalize_dtype(dt)


@contextlib.contextmanager
def renamed_errors(inner: str, outer: str) -> Iterator[None]:
    """Re-raises ``inner``'s validation errors in ``outer``'s name.

    An alias that builds one primitive with the same argument names uses it so
    that a bad value is reported under the name the user called.
    """
    try:
        yield
    except (ValueError, TypeError) as e:
        message = str(e)
        if not message.startswith(f"{inner}:"):
            raise
        raise type(e)(f"{outer}:{message[len(inner) + 1 :]}") from None


# "owner: `argument` must be …": the form of every validation error here.
_ARGUMENT_ERROR = re.compile(r"^(\w+): `(\w+)`(.*)$", re.S)


def in_callers_words(**renames: tuple[str, str]) -> Callable:
    """Decorator for an alias: errors of the primitives it builds, in its words.

    A validation error raised while the alias builds its chain names the
    primitive and its argument (``trace: `decay` must be in [0, 1]``); it is
    re-raised in the alias's name with the argument as the alias spells it
    (``sgd: `momentum` must be in [0, 1]``). An argument passed on under the
    same name needs nothing; ``renames`` maps an alias argument to the
    ``(primitive, argument)`` it is validated as where the names differ
    (``momentum=("trace", "decay")``). Other errors pass unchanged.
    """
    inverse = {where: name for name, where in renames.items()}

    def decorate(alias: Callable) -> Callable:
        name = alias.__name__
        arguments = set(inspect.signature(alias).parameters)
        unknown = set(renames) - arguments
        if unknown:
            raise TypeError(f"{name}: `renames` of unknown arguments {unknown}")

        @functools.wraps(alias)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                tx = alias(*args, **kwargs)
            except (ValueError, TypeError) as error:
                message = _in_alias_words(str(error), name, arguments, inverse)
                if message is None:
                    raise
                raise type(error)(message) from None
            return _named_at_run_time(tx, name)

        return wrapper

    return decorate


def _named_at_run_time(tx: Any, alias: str) -> Any:
    """``tx`` whose ``init`` and ``update`` errors (at trace time: structure,
    shapes, missing ``params``) name ``alias`` first and the part that raised,
    and whose ``init`` warns once when low-precision params would stall.

    The wrapper is Python only: a jitted step traces it once and compiles the
    same program.
    """
    if not isinstance(tx, GradientTransformation):
        return tx
    warned = []

    def init_fn(params):
        if not warned and _stall.warn_if_params_stall(alias, params):
            warned.append(True)  # once per optimizer
        # Checked here: the aliases and parts inside need not check again.
        with _stall.compensated(), _run_time_errors(alias):
            return tx.init(params)

    def update_fn(updates, state, params=None, **extra_args):
        with _run_time_errors(alias):
            return tx.update(updates, state, params, **extra_args)

    return _traits.copy_traits(tx, GradientTransformation(init_fn, update_fn))


# "owner: message": the form of every error gradtx raises.
_OWNED_ERROR = re.compile(r"^(\w+): (.*)$", re.S)
# Owners that are the alias's own structure, not a part to name: the chain it
# is, and the checks every ``init``/``update`` makes of its arguments.
_THE_ALIAS_ITSELF = {"chain", "init", "update"}


@contextlib.contextmanager
def _run_time_errors(alias: str) -> Iterator[None]:
    try:
        yield
    except (ValueError, TypeError) as error:
        match = _OWNED_ERROR.match(str(error))
        # Exactly these classes: JAX's own subclasses take other arguments.
        if type(error) not in (ValueError, TypeError) or match is None:
            raise
        owner, rest = match.groups()
        if owner == alias:
            raise
        if owner not in _THE_ALIAS_ITSELF:
            part = f" (raised by its part `{owner}`)"
            rest = rest[:-1] + part + "." if rest.endswith(".") else rest + part
        renamed = type(error)(f"{alias}: {rest}")
        raise renamed.with_traceback(error.__traceback__) from None


def _in_alias_words(
    message: str, alias: str, arguments: set, inverse: dict
) -> str | None:
    match = _ARGUMENT_ERROR.match(message)
    if match is None:
        return None
    owner, argument, rest = match.groups()
    if owner == alias:
        return None
    name = inverse.get((owner, argument))
    if name is None and argument in arguments:
        name = argument
    if name is None:
        return None
    return f"{alias}: `{name}`{rest}"
