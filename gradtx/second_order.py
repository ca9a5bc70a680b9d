"""Second-order quantities of a loss: the ``optax.second_order`` namespace.

Three functions of a loss ``loss(params, inputs, targets) -> scalar``, with
Optax's names, arguments and numbers:

* :func:`hvp` — the Hessian-vector product ``H v``, by forward-over-reverse
  differentiation (one gradient evaluation's cost, never forming ``H``);
* :func:`hessian_diag` — the diagonal of ``H``;
* :func:`fisher_diag` — the diagonal of the observed (empirical) Fisher
  information, the squared gradient of a negative log-likelihood.

``v`` and the diagonals are flat vectors over ``ravel(params)``
(``jax.flatten_util.ravel_pytree`` order: leaves in tree order, each in
row-major order). Optax 0.2.8 marks these functions deprecated (removal in
0.2.9) and warns; gradtx keeps them, without the warning.
"""

from typing import Any, Protocol

import jax
import jax.numpy as jnp
from jax import flatten_util

__all__ = ["fisher_diag", "hessian_diag", "hvp"]


class LossFn(Protocol):
    """``loss(params, inputs, targets) -> scalar``."""

    def __call__(self, params: Any, inputs: jax.Array, targets: jax.Array) -> jax.Array:
        """The loss at ``params`` on ``(inputs, targets)``."""


def _ravel(tree: Any) -> jax.Array:
    return flatten_util.ravel_pytree(tree)[0]


def hvp(
    loss: LossFn,
    v: jax.Array,
    params: Any,
    inputs: jax.Array,
    targets: jax.Array,
) -> jax.Array:
    """The product ``H v`` of the Hessian of ``loss`` in ``params`` with ``v``.

    With ``f(p) = loss(p, inputs, targets)``, ``H v = d/dt ∇f(p + t v)`` at
    ``t = 0``: the directional derivative of the gradient, computed as a
    Jacobian-vector product of ``jax.grad(f)`` (forward over reverse). It
    costs a small multiple of one gradient and never forms ``H``.

    Args:
      loss: the loss ``loss(params, inputs, targets) -> scalar``.
      v: a flat vector of the size of ``ravel(params)``.
      params: the parameters (a pytree) where the Hessian is taken.
      inputs: the inputs ``loss`` is evaluated on.
      targets: the targets ``loss`` is evaluated on.

    Returns:
      ``H v``, shaped like ``params`` (a pytree, as in Optax).

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.second_order import hvp
      >>> loss = lambda p, x, y: jnp.sum(x * p**3) - y
      >>> hvp(loss, jnp.ones(2), jnp.array([1.0, 2.0]), jnp.ones(2), 0.0).tolist()
      [6.0, 12.0]

    References:
      Pearlmutter, "Fast Exact Multiplication by the Hessian", Neural
      Computation 6(1), 1994.
    """
    _, unravel = flatten_util.ravel_pytree(params)
    grad = jax.grad(lambda p: loss(p, inputs, targets))
    return jax.jvp(grad, (params,), (unravel(v),))[1]


def hessian_diag(
    loss: LossFn,
    params: Any,
    inputs: jax.Array,
    targets: jax.Array,
) -> jax.Array:
    """The diagonal of the Hessian of ``loss`` in ``params``.

    Entry ``i`` is ``∂²f / ∂p_i² = e_iᵀ H e_i`` over the flat parameter
    vector, computed as one :func:`hvp` per basis vector ``e_i`` (vectorised
    with ``vmap``): exact, but ``n`` products and an ``n × n`` identity, so
    meant for small models. For a cheap unbiased estimate on large models
    use :func:`gradtx.hutchinson_estimator_diag_hessian`.

    Args:
      loss: the loss ``loss(params, inputs, targets) -> scalar``.
      params: the parameters (a pytree) where the Hessian is taken.
      inputs: the inputs ``loss`` is evaluated on.
      targets: the targets ``loss`` is evaluated on.

    Returns:
      A flat vector of the size of ``ravel(params)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.second_order import hessian_diag
      >>> loss = lambda p, x, y: jnp.sum(x * p**3) - y
      >>> hessian_diag(loss, jnp.array([1.0, 2.0]), jnp.ones(2), 0.0).tolist()
      [6.0, 12.0]

    References:
      Pearlmutter, "Fast Exact Multiplication by the Hessian", Neural
      Computation 6(1), 1994.
    """
    basis = jnp.eye(_ravel(params).size)

    def entry(e):
        return jnp.vdot(e, _ravel(hvp(loss, e, params, inputs, targets)))

    return jax.vmap(entry)(basis)


def fisher_diag(
    negative_log_likelihood: LossFn,
    params: Any,
    inputs: jax.Array,
    targets: jax.Array,
) -> jax.Array:
    """The diagonal of the observed Fisher information: the squared gradient.

    For a negative log-likelihood ``ℓ(p) = -log p(targets | inputs, p)``
    evaluated on the given data, the observed (empirical) Fisher information
    is ``∇ℓ ∇ℓᵀ``; its diagonal is ``(∂ℓ / ∂p_i)²``. Pass a single example
    (or a sum over examples, as Optax does) as ``(inputs, targets)``.

    Args:
      negative_log_likelihood: ``nll(params, inputs, targets) -> scalar``.
      params: the parameters (a pytree).
      inputs: the inputs the likelihood is evaluated on.
      targets: the targets the likelihood is evaluated on.

    Returns:
      A flat vector of the size of ``ravel(params)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.second_order import fisher_diag
      >>> nll = lambda p, x, y: jnp.sum((x * p - y) ** 2)
      >>> fisher_diag(nll, jnp.array([1.0, 2.0]), jnp.ones(2), jnp.zeros(2)).tolist()
      [4.0, 16.0]

    References:
      Martens, "New Insights and Perspectives on the Natural Gradient Method",
      JMLR 21, 2020 (https://arxiv.org/abs/1412.1193), section 11.
    """
    grads = jax.grad(negative_log_likelihood)(params, inputs, targets)
    return jnp.square(_ravel(grads))
