"""NorMuon: Muon's orthogonalised update, normalised neuron by neuron.

After the Newton–Schulz step (:func:`gradtx.scale_by_muon`), each output
neuron's row of the update is divided by the root of a running mean of its
squared entries, and the matrix rescaled to its norm before that division.
The alias, with the full rule and references, is :func:`gradtx.normuon`.
"""

import math
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, Updates, check_state
from .._core.lifting import cast_to, dtype_of, flatten_like, square_dtype, upcast
from .._core.placement import auto_axes, zeros_derived
from .muon import matrix_axes, resolve_dims


def normalize_rows(
    u: chex.Array,
    nu: chex.Array,
    b2: chex.Numeric,
    eps: chex.Numeric,
    reduction: tuple[int, ...],
    matrix: tuple[int, ...],
) -> tuple[chex.Array, chex.Array]:
    """One NorMuon normalisation of the array ``u`` (maths dtype).

    ``nu`` (the shape of ``u`` with the ``reduction`` axes of size 1) becomes
    the EMA of the mean of ``|u|²`` over those axes; ``u / (sqrt(nu) + eps)``
    is then rescaled to the Frobenius norm ``u`` had, each matrix (over the
    ``matrix`` axes) on its own. Returns the new update and ``nu``.
    """
    count = max(math.prod(u.shape[a] for a in reduction), 1)  # 0-size: no NaN
    mean_sq = jnp.sum(_maths.abs_sq(u), axis=reduction, keepdims=True) / count
    nu = _maths.ema(mean_sq, nu, b2)
    normed = u / (jnp.sqrt(nu) + eps)
    norm = lambda x: jnp.sqrt(jnp.sum(_maths.abs_sq(x), axis=matrix, keepdims=True))
    return normed * (norm(u) / (norm(normed) + eps)), nu


def _nu_shape(x: Any, reduction: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if a in reduction else n for a, n in enumerate(jnp.shape(x)))


class NorMuonState(NamedTuple):
    """The running mean square of each neuron's update: one per output index
    (and batch index) of each matrix leaf, the reduction axes kept as size 1.
    """

    nu: Updates


def scale_by_normuon(
    b2: chex.Numeric = 0.95,
    eps: chex.Numeric = 1e-10,
    nu_dtype: Any = None,
    *,
    weight_dimension_numbers: Any = None,
) -> GradientTransformation:
    r"""NorMuon's neuron-wise normalisation of an orthogonalised update.

    For each matrix :math:`O` of a leaf (seen through its
    :class:`MuonDimensionNumbers`: rows are the output axes, the mean runs
    over the reduction axes),

    .. math::
        v_t = \beta_2 v_{t-1} + (1-\beta_2)\,\mathrm{mean}_{\text{in}}(O^2),
        \quad \hat O = \frac{O}{\sqrt{v_t} + \epsilon}, \quad
        u = \hat O\, \frac{\|O\|_F}{\|\hat O\|_F + \epsilon}.

    :math:`v` is not bias-corrected (as in the reference code). Chain it after
    :func:`gradtx.scale_by_muon` with the same ``weight_dimension_numbers``;
    :func:`gradtx.normuon` is that chain. Leaves must be matrices (rank >= 2)
    as in :func:`gradtx.scale_by_muon`.

    Args:
      b2: :math:`\beta_2`, the decay of the mean square, in [0, 1).
      eps: :math:`\epsilon` >= 0, in both denominators.
      nu_dtype: dtype of :math:`v` (default: the params' real dtype; float32
        for float16 params).
      weight_dimension_numbers: as in :func:`gradtx.scale_by_muon`.

    Returns:
      A :class:`GradientTransformation` with state :class:`NorMuonState`.
    """
    owner = "scale_by_normuon"
    _validate.decay(owner, "b2", b2)
    _validate.non_negative(owner, "eps", eps)
    nu_dtype = _validate.float_dtype(owner, "nu_dtype", nu_dtype)

    def axes(tree):
        """``(reduction, matrix)`` axes of each leaf, checked by muon's view."""
        return [
            matrix_axes(owner, path, x.shape, dims)
            for (path, dims), x in zip(
                resolve_dims(owner, weight_dimension_numbers, tree),
                jax.tree.leaves(tree),
                strict=True,
            )
        ]

    def init_fn(params):
        def init_leaf(p, red):
            shape = _nu_shape(p, red)
            dims = tuple(None if a in red else a for a in range(p.ndim))
            dtype = square_dtype(p, nu_dtype) or dtype_of(p)
            return zeros_derived(p, shape, jnp.finfo(dtype).dtype, dims)

        reds = iter([red for red, _ in axes(params)])
        return NorMuonState(nu=jax.tree.map(lambda p: init_leaf(p, next(reds)), params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, NorMuonState)
        leaves, treedef = jax.tree.flatten(updates)
        nus = flatten_like(treedef, state.nu, name="nu", owner=owner)
        new_u, new_nu = [], []
        for u, nu, (red, mat) in zip(leaves, nus, axes(updates), strict=True):
            if jnp.shape(nu) != _nu_shape(u, red):
                raise ValueError(
                    f"{owner}: state nu has shape {jnp.shape(nu)} for an update "
                    f"of shape {jnp.shape(u)}: expected {_nu_shape(u, red)}."
                )
            # Explicit axes: the means and norms run over whole matrices.
            step, nu_next = auto_axes(
                lambda u, nu, red=red, mat=mat: normalize_rows(
                    u, nu, b2, eps, red, mat
                ),
                upcast(u),
                upcast(nu),
                out_like=(u, nu),
            )
            new_u.append(cast_to(step, dtype_of(u)))
            new_nu.append(cast_to(nu_next, dtype_of(nu)))
        return treedef.unflatten(new_u), NorMuonState(nu=treedef.unflatten(new_nu))

    return GradientTransformation(init_fn, update_fn)
