"""Grafting: one transformation's step size with another's direction.

Agarwal et al. (2020, "Disentangling Adaptive Gradient Methods from Learning
Rates") graft the per-layer norm of one optimizer's step onto the direction of
another's: ``u = d · ‖m‖ / ‖d‖``. Shampoo (Anil et al., 2020) uses it to give
its preconditioned direction the scale of a well-tuned diagonal method.
:func:`match_norm` is that rule for one array; :func:`graft` lifts it to two
transformations, leaf by leaf.
"""

from typing import Any, NamedTuple

import chex
import jax.numpy as jnp

from .._core import validation as _validate
from .._core.base import GradientTransformation, check_state, with_extra_args_support
from .._core.lifting import map_leaves
from .._core.traits import composed, described
from .chain import check_transforms

# The default guard against a zero direction (as in the authors' Shampoo).
GRAFT_EPS = 1e-25


def match_norm(
    magnitude: chex.Array, direction: chex.Array, eps: chex.Numeric = GRAFT_EPS
) -> chex.Array:
    """``direction · ‖magnitude‖ / (‖direction‖ + eps)``, Frobenius norms.

    The grafting rule for one array (or one block of one): the result points
    along ``direction`` with the norm of ``magnitude``. A zero ``direction``
    gives zeros. Complex arrays use ``|x|²`` in their norms.

    Args:
      magnitude: the array whose norm is kept.
      direction: an array of the same shape whose direction is kept.
      eps: ε >= 0 added to ``‖direction‖``.

    Returns:
      An array like ``direction``.
    """
    m_norm = jnp.sqrt(jnp.sum(jnp.abs(magnitude) ** 2))
    d_norm = jnp.sqrt(jnp.sum(jnp.abs(direction) ** 2))
    return direction * (m_norm / (d_norm + eps))


class GraftState(NamedTuple):
    """The states of the magnitude and of the direction transformations."""

    magnitude: Any
    direction: Any


def graft(
    magnitude_tx: GradientTransformation,
    direction_tx: GradientTransformation,
    eps: chex.Numeric = GRAFT_EPS,
) -> GradientTransformation:
    r"""Grafting: the norm of one transformation's update, the direction of another's.

    Both transformations see the same incoming updates (and params); for every
    leaf, with :math:`m` the update of ``magnitude_tx`` and :math:`d` that of
    ``direction_tx``,

    .. math::
        u = d \, \frac{\|m\|_F}{\|d\|_F + \epsilon}.

    The norms are per leaf (per parameter tensor, "layer-wise grafting").
    Shampoo grafts per leaf too and uses the same rule,
    :func:`gradtx.combinators.graft.match_norm`, inside its primitive.

    Reference: Agarwal, Anil, Hazan, Koren & Zhang, 2020, "Disentangling
    Adaptive Gradient Methods from Learning Rates" (arXiv 2002.11803).

    Args:
      magnitude_tx: the transformation whose per-leaf update norm is kept.
      direction_tx: the transformation whose update direction is kept.
      eps: :math:`\epsilon >= 0` added to the direction's norm (a zero
        direction gives a zero update).

    Returns:
      A :class:`GradientTransformation` with state :class:`GraftState`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import graft, scale, scale_by_sign
      >>> tx = graft(scale(2.0), scale_by_sign())  # sign direction, 2‖g‖ norm
      >>> g = jnp.array([3.0, -4.0])
      >>> u, _ = tx.update(g, tx.init(g))
      >>> [round(float(x), 4) for x in u]  # ‖u‖ = 10, along (1, -1)
      [7.0711, -7.0711]
    """
    owner = "graft"
    check_transforms(owner, (magnitude_tx, direction_tx))
    _validate.non_negative(owner, "eps", eps)
    mag = with_extra_args_support(magnitude_tx)
    dirn = with_extra_args_support(direction_tx)

    def init_fn(params):
        return GraftState(mag.init(params), dirn.init(params))

    def update_fn(updates, state, params=None, **extra_args):
        check_state(owner, state, GraftState)
        m, m_state = mag.update(updates, state.magnitude, params, **extra_args)
        d, d_state = dirn.update(updates, state.direction, params, **extra_args)
        out = map_leaves(
            lambda d_leaf, m_leaf: match_norm(m_leaf, d_leaf, eps),
            d,
            m,
            names=["magnitude update"],
            owner=owner,
        )
        return out, GraftState(m_state, d_state)

    tx = GradientTransformation(init_fn, update_fn)
    tx = described(tx, owner, magnitude=magnitude_tx, direction=direction_tx)
    return composed(
        tx, (magnitude_tx, direction_tx), reason="it matches per-leaf norms"
    )
