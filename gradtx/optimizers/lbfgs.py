r"""L-BFGS, a :func:`gradtx.chain` of the preconditioner and a line search.

Unlike the other aliases, L-BFGS needs the objective: its default line search
evaluates it, so ``update`` takes ``value``, ``grad`` and ``value_fn`` keyword
arguments (see :mod:`gradtx.transforms.backtracking`).
"""

from typing import Any

from .._core import validation as _validate
from .._core.base import GradientTransformation, ScalarOrSchedule, identity
from ..combinators.chain import chain
from ..transforms.lbfgs import scale_by_lbfgs
from ..transforms.scaling import learning_rate_step, scale
from ..transforms.zoom_linesearch import scale_by_zoom_linesearch

# Optax's default line search for L-BFGS, built once (it keeps no state).
_ZOOM = scale_by_zoom_linesearch(max_linesearch_steps=20, initial_guess_strategy="one")


@_validate.in_callers_words()
def lbfgs(
    learning_rate: ScalarOrSchedule | None = None,
    memory_size: int = 10,
    scale_init_precond: bool = True,
    linesearch: Any = _ZOOM,
) -> GradientTransformation:
    r"""L-BFGS: a quasi-Newton step along an inverse-Hessian estimate, line-searched.

    With :math:`s_i = \theta_{i+1} - \theta_i`, :math:`y_i = g_{i+1} - g_i`,
    :math:`\rho_i = 1/\langle y_i, s_i\rangle` for the last :math:`m` steps,

    .. math::
        H_k = V_{k-1}^\top \cdots V_{k-m}^\top\, \gamma_k I\, V_{k-m} \cdots
        V_{k-1} + \sum_{j=k-m}^{k-1} \rho_j\, V_{k-1}^\top \cdots
        V_{j+1}^\top s_j s_j^\top V_{j+1} \cdots V_{k-1},
        \qquad V_j = I - \rho_j y_j s_j^\top,

    .. math::
        \theta_{k+1} = \theta_k - \eta_k H_k g_k,

    with :math:`\gamma_k = \langle s_{k-1}, y_{k-1}\rangle / \|y_{k-1}\|^2`
    (``scale_init_precond``; :math:`\min(1, 1/\|g_0\|)` at the first step),
    and :math:`\eta_k` found by ``linesearch`` (a zoom search for the strong
    Wolfe conditions by default), times ``learning_rate`` if given. The
    product :math:`H_k g_k` is computed by the two-loop recursion in
    :math:`O(mn)`, without forming :math:`H_k`.

    Each ``update`` needs ``value`` and ``grad`` (the objective and its
    gradient at the params) and ``value_fn`` (the objective); for a
    deterministic objective, :func:`gradtx.value_and_grad_from_state` reuses
    the pair the line search computed at the new params. The default line
    search, ``scale_by_zoom_linesearch(max_linesearch_steps=20,
    initial_guess_strategy="one")``, is built once, at import, as in Optax
    (it holds no state: the state lives in ``init``'s result).

    References: Nocedal & Wright, *Numerical Optimization*, 1999, Algorithms
    7.4 and 7.5; Liu & Nocedal, 1989, "On the limited memory BFGS method for
    large scale optimization".

    Args:
      learning_rate: a number >= 0 or a schedule scaling the step, or ``None``
        (the line search alone sets it).
      memory_size: the number :math:`m` >= 1 of pairs kept.
      scale_init_precond: use :math:`\gamma_k I` as the initial estimate
        (else :math:`I`).
      linesearch: a line search transformation, or ``None`` for none (then
        ``learning_rate`` is the step size).

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import lbfgs
      >>> from gradtx import apply_updates
      >>> from gradtx import value_and_grad_from_state
      >>> f = lambda w: jnp.sum(w ** 2)
      >>> opt = lbfgs()
      >>> w = jnp.array([1.0, 2.0, 3.0])
      >>> state = opt.init(w)
      >>> value_and_grad = value_and_grad_from_state(f)
      >>> for _ in range(2):
      ...     value, grad = value_and_grad(w, state=state)
      ...     updates, state = opt.update(
      ...         grad, state, w, value=value, grad=grad, value_fn=f
      ...     )
      ...     w = apply_updates(w, updates)
      >>> float(f(w)) < 1e-12
      True
    """
    owner = "lbfgs"
    if linesearch is None:
        linesearch = identity()
    elif not (hasattr(linesearch, "init") and hasattr(linesearch, "update")):
        raise TypeError(
            f"{owner}: `linesearch` must be a gradient transformation (such as "
            f"scale_by_zoom_linesearch(...)) or None, got {linesearch!r}."
        )
    step = (
        scale(-1.0)
        if learning_rate is None
        else learning_rate_step(owner, learning_rate)
    )
    return chain(scale_by_lbfgs(memory_size, scale_init_precond), step, linesearch)
