"""Properties a transformation carries, for the mechanisms that read them.

Mechanisms above the optimizers (packing, the fused step) need to know what a
transformation *is*: packing may run only transformations whose result does
not depend on how the elements are grouped into leaves, and the fused step
recognises Adam to run it as one pass over memory. Instead of asking every
primitive to know about those mechanisms, a transformation carries its
properties and the mechanisms read them:

* ``elementwise``: the update of each element depends only on that element's
  gradient, state and parameter, and on reductions over the whole tree (a
  global norm); never on which leaf holds it or on the leaf's shape. Set by the
  primitives that are (:func:`elementwise`), inherited by the combinators and
  wrappers whose members all are. A transformation that does not declare it
  (a foreign Optax transformation included) is not elementwise.
* ``description``: the kind and hyperparameters of a primitive the fused step
  knows (``"adam"``, ``"scale"``, …), recorded by :func:`described`.

The properties are keyed by the ``update`` function, weakly (they go away with
the transformation), so :class:`~gradtx.GradientTransformation` stays a plain
``(init, update)`` pair that Optax, Flax and Equinox accept as it is.
"""

import weakref
from collections.abc import Iterable
from typing import Any, NamedTuple

from .base import GradientTransformation


class Description(NamedTuple):
    """A transformation's kind (``"adam"``, ``"chain"``, …) and its arguments."""

    kind: str
    args: dict[str, Any]


class Traits(NamedTuple):
    """The properties of one transformation (defaults: none declared)."""

    elementwise: bool = False
    description: Description | None = None


_TRAITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def traits(tx: Any) -> Traits:
    """The properties ``tx`` carries; the defaults for one that declares none."""
    try:
        return _TRAITS.get(tx.update, Traits())
    except (TypeError, AttributeError):  # not weakly referenceable, not a tx
        return Traits()


def declare(tx: GradientTransformation, **properties: Any) -> GradientTransformation:
    """Records ``properties`` (fields of :class:`Traits`) for ``tx``; returns it."""
    _TRAITS[tx.update] = traits(tx)._replace(**properties)
    return tx


def elementwise(tx: GradientTransformation) -> GradientTransformation:
    """Declares ``tx`` elementwise (see the module docstring); returns it."""
    return declare(tx, elementwise=True)


def is_elementwise(tx: Any) -> bool:
    return traits(tx).elementwise


def all_elementwise(txs: Iterable[Any]) -> bool:
    return all(is_elementwise(t) for t in txs)


def described(
    tx: GradientTransformation, kind: str, **args: Any
) -> GradientTransformation:
    """Records ``(kind, args)`` for ``tx`` and returns ``tx`` unchanged."""
    return declare(tx, description=Description(kind, args))


def describe(tx: Any) -> Description | None:
    """The record of ``tx``, or ``None`` for a transformation without one."""
    return traits(tx).description
