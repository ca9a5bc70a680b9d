"""Cautious updates: keep only the part of a step that agrees with the gradient."""

import jax.numpy as jnp

from .._core import validation as _validate
from .._core.base import GradientTransformation, with_extra_args_support
from .._core.lifting import map_leaves
from .._core.traits import composed


def cautious_leaf(u, g, descent: bool = True):
    """One leaf: ``u`` where it agrees with ``g``, rescaled by ``n / (k + 1)``.

    Agreement is ``u·g < 0`` for a descent step (``descent``: an optimizer's
    output, added to the params), ``u·g > 0`` for a direction that points along
    the gradient (a primitive's output, before the learning rate). ``n`` is the
    leaf's size and ``k`` the number of agreeing elements. Where ``u·g`` is NaN
    the element is kept (not counted), so a non-finite step stays visible
    instead of being masked to a silent 0.
    """
    product = u * g
    agree = product < 0 if descent else product > 0
    scale = u.size / (jnp.sum(agree, dtype=u.dtype) + 1)
    return jnp.where(agree | jnp.isnan(product), u * scale, jnp.zeros_like(u))


def cautious(
    inner: GradientTransformation, *, descent: bool = True
) -> GradientTransformation:
    r"""Cautious optimizer: mask the step where it disagrees with the gradient.

    For each leaf, with :math:`u_t` the update of ``inner`` and :math:`g_t` the
    gradient it was given, :math:`n` the leaf's size:

    .. math::
        \phi_t = \mathbb{1}[-u_t \odot g_t > 0], \qquad
        u'_t = \frac{n}{\sum_i \phi_{t,i} + 1}\; \phi_t \odot u_t

    (``descent=False``: :math:`\phi_t = \mathbb{1}[u_t \odot g_t > 0]`, for a
    transformation whose output points along the gradient, such as
    :func:`gradtx.scale_by_adam`). The inner state is not touched: the momentum
    keeps every element, only the step is masked. An element whose
    :math:`u_t \odot g_t` is NaN is kept (not counted): a non-finite step is
    not hidden as a 0. The count is per leaf, so the
    wrapper is not elementwise (packing refuses it).

    ``cautious(adam(η, b1, b2, ε))`` is ``pytorch_optimizer.AdamP(cautious=True,
    delta=0, weight_decay=0)`` and the C-AdamW of the paper without decay, up to
    where ε sits (AdamP divides by :math:`\sqrt{v_t} + \epsilon` before the
    :math:`\sqrt{1-\beta_2^t}` correction, i.e. :math:`\epsilon/\sqrt{1-\beta_2^t}`
    against Adam's :math:`\epsilon`). Wrapping ``adamw(η, …, weight_decay=λ)``
    masks the decay term :math:`\eta\lambda\theta` with the Adam step (and the
    rescale multiplies it); AdamP and C-AdamW decay every weight. Their rule is
    ``chain(cautious(scale_by_adam(b1, b2, ε), descent=False),
    add_decayed_weights(λ), scale_by_learning_rate(η))``.

    Reference: Liang, Chen, Liu & Liu, 2024, "Cautious Optimizers: Improving
    Training with One Line of Code" (C-Optim).

    Args:
      inner: the transformation whose steps are masked.
      descent: ``True`` when ``inner``'s updates are steps added to the params
        (every gradtx optimizer); ``False`` when they point along the gradient.

    Returns:
      A :class:`GradientTransformation` with ``inner``'s state.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx import cautious, sgd
      >>> opt = cautious(sgd(0.1, momentum=0.9))
      >>> params = jnp.zeros(4)
      >>> state = opt.init(params)
      >>> u, state = opt.update(jnp.array([1.0, 1.0, -1.0, 1.0]), state, params)
      >>> u, state = opt.update(jnp.array([-0.5, 1.0, 0.5, 1.0]), state, params)
      >>> [round(float(x), 4) for x in u]  # the momentum disagrees with g at 0 and 2
      [0.0, -0.2533, 0.0, -0.2533]
    """
    owner = "cautious"
    if not (hasattr(inner, "init") and hasattr(inner, "update")):
        raise TypeError(
            f"{owner}: `inner` must be a gradient transformation, got {inner!r}."
        )
    _validate.flag(owner, "descent", descent)
    inner_tx = with_extra_args_support(inner)

    def init_fn(params):
        return inner_tx.init(params)

    def update_fn(updates, state, params=None, **extra_args):
        steps, state = inner_tx.update(updates, state, params, **extra_args)
        steps = map_leaves(
            lambda u, g: cautious_leaf(u, g, descent),
            steps,
            updates,
            names=["gradients"],
            owner=owner,
            complex_ok="the sign agreement of step and gradient is real-only",
        )
        return steps, state

    tx = GradientTransformation(init_fn, update_fn)
    return composed(tx, [inner], reason="it counts agreeing signs per leaf")
