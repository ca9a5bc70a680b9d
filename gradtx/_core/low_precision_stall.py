"""The warning at ``init`` that low-precision params may never move.

A bfloat16 parameter near 1 has neighbours 2^-7 apart, so ``apply_updates``
rounds any step smaller than half that (2^-8, about 0.004) back to the same
value: ``adam(1e-3)`` leaves such params exactly where they started, step
after step, without a NaN or an error to say so (float16: 2^-11). An optimizer
initialised on bfloat16 or float16 params warns once, in Python while ``init``
runs (traced or not; never inside a compiled step), with the fix. It does not
warn inside :func:`gradtx.kahan_summation` or :func:`gradtx.stochastic_rounding`,
which keep or randomise what rounding drops (:func:`compensated`).

Silence it for one optimizer with :func:`silence_stall_warning`, or everywhere
with the ``warnings`` module:
``warnings.filterwarnings("ignore", category=gradtx.PrecisionStallWarning)``.
"""

import contextlib
import contextvars
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp

from . import traits as _traits
from .base import GradientTransformation
from .lifting import leaf_paths


class PrecisionStallWarning(UserWarning):
    """An optimizer was initialised on bfloat16/float16 params without a
    compensation for rounding: updates below half a unit in the last place of
    a param round away in ``apply_updates`` and training can stall.

    Filter it like any warning, e.g.
    ``warnings.filterwarnings("ignore", category=gradtx.PrecisionStallWarning)``;
    for one optimizer, see :func:`gradtx.silence_stall_warning`.
    """


_COMPENSATED = contextvars.ContextVar("gradtx_compensated", default=False)
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@contextlib.contextmanager
def compensated() -> Iterator[None]:
    """While active, optimizers initialised here do not warn: a wrapper that
    compensates for rounding (Kahan summation, stochastic rounding) runs its
    inner ``init`` inside it."""
    token = _COMPENSATED.set(True)
    try:
        yield
    finally:
        _COMPENSATED.reset(token)


def silence_stall_warning(tx: Any) -> Any:
    """``tx``, without the warning about low-precision params at ``init``.

    gradtx's optimizers (``gradtx.adam``, ``gradtx.muon``, …) warn with a
    :class:`PrecisionStallWarning` when initialised on bfloat16 or float16
    params without :func:`gradtx.kahan_summation` or
    :func:`gradtx.stochastic_rounding` around them. Use this when the
    updates are known to be large enough (a large learning rate, small
    weights). To silence it everywhere, filter the warning:
    ``warnings.filterwarnings("ignore", category=gradtx.PrecisionStallWarning)``.

    Args:
      tx: any transformation; the optimizers inside it (a ``chain`` of
        several, a wrapper around one) are all silenced.

    Returns:
      A transformation with ``tx``'s ``update`` and an ``init`` that gives
      ``tx``'s state without the warning.

    Examples:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.silence_stall_warning(gradtx.adam(1.0))
      >>> state = tx.init({"w": jnp.ones(3, jnp.bfloat16)})  # no warning
    """
    if not (
        callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))
    ):
        raise TypeError(
            "silence_stall_warning: `tx` must be a GradientTransformation, "
            f"got {type(tx).__name__}."
        )

    def init_fn(params):
        with compensated():
            return tx.init(params)

    return _traits.copy_traits(tx, GradientTransformation(init_fn, tx.update))


def warn_if_params_stall(owner: str, params: Any) -> bool:
    """Warns (and returns True) when ``params`` hold bfloat16/float16 leaves
    and no compensation is active; returns False otherwise."""
    if _COMPENSATED.get():
        return False
    leaves = jax.tree.leaves(params)
    low = [
        i
        for i, leaf in enumerate(leaves)
        if _is_low_precision(getattr(leaf, "dtype", None))
    ]
    if not low:
        return False
    paths = leaf_paths(params)
    dtypes = sorted({jnp.dtype(leaves[i].dtype).name for i in low})
    shown = ", ".join(paths[i] for i in low[:3]) + (", …" if len(low) > 3 else "")
    warnings.warn(
        f"{owner}: {len(low)} of the {len(leaves)} param leaves are "
        f"{' and '.join(dtypes)} ({shown}). `apply_updates` rounds an update "
        "smaller than half the gap between neighbouring values of that dtype "
        "(2^-9 to 2^-8 of the param's magnitude for bfloat16, 2^-12 to 2^-11 "
        "for float16) back to the same value, so these params can stay "
        "exactly where they are, step after step. Keep what rounding drops "
        "with `gradtx.kahan_summation(tx)` (2 bytes a param) or "
        "`gradtx.stochastic_rounding(tx, key)`, or train float32 params. "
        "Silence: `gradtx.silence_stall_warning(tx)`, or everywhere "
        "`warnings.filterwarnings('ignore', category=gradtx.PrecisionStallWarning)`"
        " (see docs/precision.md).",
        PrecisionStallWarning,
        stacklevel=_callers_level(),
    )
    return True


def _is_low_precision(dtype: Any) -> bool:
    if dtype is None:
        return False
    try:
        dtype = jnp.dtype(dtype)
    except TypeError:
        return False
    return jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize < 4


def _callers_level() -> int:
    """The ``stacklevel`` of the first frame outside gradtx and JAX (the line
    of the caller's ``init``, through chains and ``jax.jit``)."""
    skip = (_PACKAGE, os.path.dirname(os.path.abspath(jax.__file__)))
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(skip):
        frame, level = frame.f_back, level + 1
    return level
