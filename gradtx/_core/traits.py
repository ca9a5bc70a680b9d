"""What a transformation is, for the engines that may run it another way.

A few primitives (Adam's scaling, decoupled weight decay, learning-rate
scaling, global-norm clipping) and :func:`gradtx.chain` record their kind and
hyperparameters here when they are built. :func:`gradtx.fused_step` reads the
record to recognise an optimizer it can run as one pass over memory; a
transformation without a record is simply run as it is.

The record is keyed by the ``update`` function (weakly: it goes away with the
transformation), so :class:`GradientTransformation` stays a plain pair.
"""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple

from .base import GradientTransformation


class Description(NamedTuple):
    """A transformation's kind (``"adam"``, ``"chain"``, …) and its arguments."""

    kind: str
    args: dict[str, Any]


_RECORDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def described(
    tx: GradientTransformation, kind: str, **args: Any
) -> GradientTransformation:
    """Records ``(kind, args)`` for ``tx`` and returns ``tx`` unchanged."""
    _RECORDS[tx.update] = Description(kind, args)
    return tx


def describe(tx: Any) -> Description | None:
    """The record of ``tx``, or ``None`` for a transformation without one."""
    try:
        return _RECORDS.get(tx.update)
    except TypeError:  # an update that cannot be weakly referenced
        return None
