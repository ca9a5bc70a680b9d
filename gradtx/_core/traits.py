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
  wrappers whose members all are (:func:`composed`). A transformation that
  does not declare it (a foreign Optax transformation included) is not
  elementwise; :func:`not_elementwise` finds the part to blame.
* ``description``: the kind and hyperparameters of a primitive the fused step
  knows (``"adam"``, ``"scale"``, …), recorded by :func:`described`.

The properties are keyed by the ``update`` function, weakly (they go away with
the transformation), so :class:`~gradtx.GradientTransformation` stays a plain
``(init, update)`` pair that Optax, Flax and Equinox accept as it is.
"""

import inspect
import weakref
from collections.abc import Iterable
from typing import Any, NamedTuple


class Description(NamedTuple):
    """A transformation's kind (``"adam"``, ``"chain"``, …) and its arguments."""

    kind: str
    args: dict[str, Any]


class Traits(NamedTuple):
    """The properties of one transformation (defaults: none declared).

    Attributes:
      elementwise: see the module docstring.
      description: the fused step's record (:func:`described`).
      parts: the transformations a combinator or wrapper is made of.
      reason: why a combinator of elementwise parts is not elementwise itself
        (its mask is a function of the params, …).
      name: the factory's name, where it is not the name of the function that
        defines ``update`` (see :func:`name`).
    """

    elementwise: bool = False
    description: Description | None = None
    parts: tuple = ()
    reason: str | None = None
    name: str | None = None


_TRAITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _key(tx: Any) -> Any:
    """``tx.update``; for a bound method (a class such as ``MultiSteps`` with
    an ``update`` method), the object it is bound to."""
    update = tx.update
    return update.__self__ if inspect.ismethod(update) else update


def traits(tx: Any) -> Traits:
    """The properties ``tx`` carries; the defaults for one that declares none."""
    try:
        return _TRAITS.get(_key(tx), Traits())
    except (TypeError, AttributeError):  # not weakly referenceable, not a tx
        return Traits()


# (``Any``: this module sits under ``base``, which copies traits across wrappers.)
def declare(tx: Any, **properties: Any) -> Any:
    """Records ``properties`` (fields of :class:`Traits`) for ``tx``; returns it."""
    _TRAITS[_key(tx)] = traits(tx)._replace(**properties)
    return tx


def declare_elementwise(tx: Any) -> Any:
    """Declares a transformation of your own elementwise, so packing accepts it.

    Elementwise means: the update of each element depends only on that
    element's gradient, state and parameter, and on reductions over the whole
    tree (a global norm); never on which leaf holds it, nor on a leaf's shape
    or per-leaf statistics. :func:`gradtx.packed` runs only transformations
    that declare it; gradtx's elementwise primitives declare it themselves,
    and chains and wrappers inherit it from their parts. Declaring a
    transformation that is not elementwise makes packed runs silently wrong.

    Args:
      tx: the transformation (it is returned unchanged, with the property).

    Returns:
      ``tx``.

    Examples:
      >>> import gradtx, jax
      >>> double = gradtx.stateless(lambda u, p: jax.tree.map(lambda x: 2 * x, u))
      >>> tx = gradtx.packed(gradtx.declare_elementwise(double))
    """
    return declare(tx, elementwise=True)


elementwise = declare_elementwise  # the primitives' spelling


def is_elementwise(tx: Any) -> bool:
    return traits(tx).elementwise


def composed(tx: Any, parts: Iterable[Any], *, reason: str | None = None) -> Any:
    """Declares ``tx`` made of ``parts``: elementwise when every part is and
    there is no ``reason`` (the combinator's own) that it is not; returns it."""
    parts = tuple(parts)
    ok = reason is None and all(is_elementwise(p) for p in parts)
    return declare(tx, parts=parts, reason=reason, elementwise=ok)


def copy_traits(source: Any, tx: Any) -> Any:
    """Gives ``tx`` (a wrapper with the same behaviour) the traits and the
    name of ``source``; returns it."""
    _TRAITS[_key(tx)] = traits(source)._replace(name=name(source))
    return tx


def name(tx: Any) -> str:
    """``tx`` in its caller's words: the factory that built it.

    A declared name, else the function that defines ``update`` (an
    ``update_fn`` local to ``scale_by_adam`` gives ``"scale_by_adam"``).
    Transformations from outside gradtx are named with their module
    (``"optax's scale_by_trust_ratio (optax._src.transform)"``).
    """
    declared = traits(tx).name
    if declared is not None:
        return declared
    fn = getattr(tx, "update", None)
    qualname = getattr(fn, "__qualname__", None) or type(tx).__qualname__
    head = qualname.split(".<locals>")[0]
    module = getattr(fn, "__module__", None) or ""
    package = module.split(".")[0]
    if package == "gradtx":
        return head
    return f"{package}'s {head} ({module})" if package else head


def not_elementwise(tx: Any) -> tuple[Any, str | None] | None:
    """``None`` for an elementwise ``tx``; else ``(part, reason)``: the first
    part (depth first; else ``tx`` itself) that keeps it from being
    elementwise, and the reason a combinator gave (``None`` for a part that
    simply does not declare it)."""
    found = traits(tx)
    if found.elementwise:
        return None
    for part in found.parts:
        blame = not_elementwise(part)
        if blame is not None:
            return blame
    return tx, found.reason


def described(tx: Any, kind: str, **args: Any) -> Any:
    """Records ``(kind, args)`` for ``tx`` and returns ``tx`` unchanged."""
    return declare(tx, description=Description(kind, args))


def describe(tx: Any) -> Description | None:
    """The record of ``tx``, or ``None`` for a transformation without one."""
    return traits(tx).description
