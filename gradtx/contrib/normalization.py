r"""Normalisation of the whole update tree to unit global norm.

Used as the first stage of SAM's adversarial step (Foret et al., 2021,
"Sharpness-Aware Minimization for Efficiently Improving Generalization",
https://arxiv.org/abs/2010.01412): ``chain(normalize(), sgd(rho))`` moves the
params a distance ``rho`` uphill.
"""

import jax.numpy as jnp

from .._core.base import EmptyState, GradientTransformation, init_empty_state
from .._core.lifting import global_norm, map_leaves
from .._core.traits import elementwise

__all__ = ["NormalizeState", "normalize"]

NormalizeState = EmptyState
"""The state of :func:`normalize`: none (Optax's name for it)."""


def normalize() -> GradientTransformation:
    r"""Divides every update by the global norm of all of them.

    .. math::
        u = \frac{g}{\|g\|}, \qquad \|g\| = \sqrt{\sum_{\text{leaves}} \sum |g_i|^2}

    so that the whole tree has norm 1. An all-zero tree (or one with no
    elements) stays zero, where Optax divides by zero and returns NaN.

    Reference: Foret et al., 2021, "Sharpness-Aware Minimization for
    Efficiently Improving Generalization" (the ascent step
    :math:`\rho\, g / \|g\|`).

    Returns:
      A stateless :class:`GradientTransformation`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.contrib import normalize
      >>> tx = normalize()
      >>> g = {"a": jnp.array([3.0]), "b": jnp.array([4.0])}
      >>> u, _ = tx.update(g, tx.init(g))
      >>> u["a"].tolist(), u["b"].tolist()
      ([0.6000000238418579], [0.800000011920929])
    """

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        norm = global_norm(updates)
        safe = jnp.where(norm > 0, norm, 1.0)
        return map_leaves(lambda g: g / safe, updates, owner="normalize"), state

    return elementwise(GradientTransformation(init_empty_state, update_fn))
