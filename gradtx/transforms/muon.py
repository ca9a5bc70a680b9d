"""Muon: momentum orthogonalised by a Newton–Schulz iteration.

The iteration (:mod:`.newton_schulz`) maps a matrix ``G = U S Vᵀ`` to
roughly ``U S' Vᵀ`` with every singular value ``S'_ii`` pushed into about
[0.7, 1.2]: a cheap, matmul-only stand-in for the polar factor ``U Vᵀ``.
Arrays of higher rank are viewed as a batch of matrices through
:class:`MuonDimensionNumbers`. The alias, with the full rule and references,
is :func:`gradtx.muon`.
"""

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from .._core import maths as _maths
from .._core import validation as _validate
from .._core.base import GradientTransformation, Updates, check_state, init_empty_state
from .._core.lifting import flatten_like, leaf_paths, map_leaves, state_zeros_like
from ..combinators.masked import MaskedNode
from .newton_schulz import (
    NS_COEFFS_PRESETS,
    NS_METHODS,
    PRECONDITIONINGS,
    check_ns_method,
    gram_newton_schulz,
    newton_schulz,
    orthogonalize_grouped,
    resolve_ns_coeffs,
)

__all__ = [
    "NS_COEFFS_PRESETS",
    "NS_METHODS",
    "PRECONDITIONINGS",
    "MuonDimensionNumbers",
    "MuonState",
    "check_ns_coeffs",
    "gram_newton_schulz",
    "matrix_axes",
    "matrix_view",
    "muon_routing",
    "newton_schulz",
    "orthogonalize_tree",
    "resolve_dims",
    "scale_by_muon",
    "scale_by_shape",
]


class MuonDimensionNumbers(NamedTuple):
    """Which axes of a parameter form the matrix that Muon orthogonalises.

    The parameter is used as ``y = x W``: ``reduction_axis`` (the fan-in, by
    default axis 0) and ``output_axis`` (the fan-out, axis 1) may each be one
    axis or a sequence of axes, flattened into one matrix dimension. Every
    other axis is a batch axis: each slice is orthogonalised on its own.
    """

    reduction_axis: Sequence[int] | int = 0
    output_axis: Sequence[int] | int = 1


def _is_dim_nums(x: Any) -> bool:
    return isinstance(x, MuonDimensionNumbers)


def _axes(x_ndim: int, axes: Sequence[int] | int) -> tuple[int, ...]:
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    return tuple(a % x_ndim for a in axes)


def matrix_view(owner: str, path: str, shape: tuple, dims: Any):
    """``(to_batch, from_batch, fan_in, fan_out)`` for a leaf of ``shape``.

    ``to_batch`` views the leaf as ``(batch, fan_in, fan_out)`` matrices.
    """
    if not _is_dim_nums(dims):
        raise ValueError(
            f"{owner}: leaf {path} needs a MuonDimensionNumbers, got {dims!r}."
        )
    ndim = len(shape)
    if ndim < 2:
        raise ValueError(
            f"{owner}: leaf {path} has shape {shape}; Muon orthogonalises "
            "matrices (rank >= 2) only. Use gradtx.muon, which sends other "
            "leaves to AdamW, or mask them out."
        )
    red, out = _axes(ndim, dims.reduction_axis), _axes(ndim, dims.output_axis)
    if set(red) & set(out) or len(set(red)) < len(red) or len(set(out)) < len(out):
        raise ValueError(
            f"{owner}: leaf {path}: reduction axes {red} and output axes {out} "
            "must be distinct."
        )
    batch = tuple(a for a in range(ndim) if a not in red + out)
    order = batch + red + out
    inverse = tuple(int(i) for i in np.argsort(order))
    size = lambda axes: math.prod(shape[a] for a in axes)
    flat = (size(batch), size(red), size(out))
    unflat = tuple(shape[a] for a in order)
    to_batch = lambda x: x.transpose(order).reshape(flat)
    from_batch = lambda x: x.reshape(unflat).transpose(inverse)
    return to_batch, from_batch, flat[1], flat[2]


def _view_key(ndim: int, dims: Any) -> tuple:
    return (_axes(ndim, dims.reduction_axis), _axes(ndim, dims.output_axis))


def orthogonalize_tree(
    owner: str,
    tree: Any,
    weight_dimension_numbers: Any,
    orthogonalize: Callable,
    coeffs: chex.Array,
) -> Any:
    """``orthogonalize(matrix, coeffs)`` on every matrix of every leaf.

    Leaves are viewed as matrices through ``weight_dimension_numbers`` (as in
    :func:`scale_by_muon`); leaves of one shape, view, dtype and placement go
    through one batched call (:func:`orthogonalize_grouped`).
    """
    leaves, treedef = jax.tree.flatten(tree)
    views = []
    for (path, dims), x in zip(
        resolve_dims(owner, weight_dimension_numbers, tree), leaves, strict=True
    ):
        to_batch, from_batch, _, _ = matrix_view(owner, path, x.shape, dims)
        views.append((_view_key(x.ndim, dims), to_batch, from_batch))
    out = orthogonalize_grouped(leaves, views, orthogonalize, coeffs)
    return treedef.unflatten(out)


class MuonState(NamedTuple):
    """Step count (int32, saturating), momentum, and the Newton–Schulz
    coefficients (shape ``(3,)`` or ``(n, 3)``, kept in the state as in Optax).
    """

    count: chex.Array
    mu: Updates
    ns_coeffs: chex.Array


def matrix_axes(owner: str, path: str, shape: tuple, dims: Any) -> tuple:
    """``(reduction, matrix)``: the fan-in axes of a leaf, and fan-in + fan-out.

    Checked as :func:`matrix_view` checks them (a non-matrix leaf raises
    naming ``path``).
    """
    matrix_view(owner, path, shape, dims)
    red = _axes(len(shape), dims.reduction_axis)
    return red, tuple(sorted(red + _axes(len(shape), dims.output_axis)))


def check_ns_coeffs(owner, ns_coeffs, ns_steps):
    _validate.integer(owner, "ns_steps", ns_steps)
    if any(isinstance(c, jax.core.Tracer) for c in jax.tree.leaves(ns_coeffs)):
        return  # traced coefficients: checked by shape in `init`
    coeffs = np.asarray(ns_coeffs, dtype=np.float64)
    if coeffs.ndim not in (1, 2) or coeffs.shape[-1] != 3:
        raise ValueError(
            f"{owner}: `ns_coeffs` must have shape (3,) or (n, 3), got {coeffs.shape}."
        )
    if not np.all(np.isfinite(coeffs)):
        raise ValueError(f"{owner}: `ns_coeffs` must be finite, got {ns_coeffs!r}.")
    if coeffs.ndim == 2 and not 1 <= coeffs.shape[0] <= ns_steps:
        raise ValueError(
            f"{owner}: `ns_coeffs` has {coeffs.shape[0]} rows (one per step) but "
            f"`ns_steps` is {ns_steps}: give between 1 and `ns_steps` rows."
        )


def resolve_dims(owner, weight_dimension_numbers, updates):
    """One :class:`MuonDimensionNumbers` per leaf of ``updates``, with its path."""
    leaves, treedef = jax.tree.flatten(updates)
    dims = weight_dimension_numbers
    if callable(dims):
        dims = dims(updates)
    if dims is None:
        dims = [MuonDimensionNumbers()] * len(leaves)
    else:
        dims = flatten_like(treedef, dims, name="weight_dimension_numbers", owner=owner)
    return list(zip(leaf_paths(updates), dims, strict=True))


def scale_by_muon(
    ns_coeffs: Any = NS_COEFFS_PRESETS["standard"],
    ns_steps: chex.Numeric = 5,
    beta: chex.Numeric = 0.95,
    eps: chex.Numeric = 1e-8,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    weight_dimension_numbers: Any = None,
    ns_method: str = "newton_schulz",
    bias_correction: bool = True,
) -> GradientTransformation:
    """Muon scaling: ``u = NS(m̂)``, the Newton–Schulz orthogonalised momentum.

    ``m ← β·m + (1 − β)·g`` is bias-corrected (Nesterov: ``m̂ = β·m/(1 − β^{t+1})
    + (1 − β)·g/(1 − β^t)``); each matrix leaf of ``m̂`` then goes through
    ``ns_steps`` quintic steps (:func:`newton_schulz`; leaves of one shape
    go through one batched call). With ``adaptive``, the
    result is scaled by ``⟨m̂, NS(m̂)⟩`` (the dual norm, Bernstein & Newhouse
    2024). See :func:`gradtx.muon` for the full rule and references.

    Differences from Optax (same numbers otherwise): ``weight_dimension_numbers
    = None`` treats every leaf of any tree as a matrix (Optax accepts only a
    single array there); a non-matrix leaf raises naming its path; bfloat16 and
    float16 matrices are orthogonalised in float32; ``ns_coeffs`` with more
    rows than ``ns_steps`` raises with a message that says so.

    Args:
      ns_coeffs: ``(c0, c1, c2)`` used at every step, or one triple per step
        (at most ``ns_steps`` of them; then ``ns_steps`` is not used), or a
        preset name: ``"standard"``, ``"dion"``, ``"original"``,
        ``"quintic"``, ``"polar_express"`` (:data:`NS_COEFFS_PRESETS`).
      ns_steps: number of Newton–Schulz steps, >= 0.
      beta: decay of the momentum, in [0, 1).
      eps: ε >= 0 added to the norm that scales each matrix first.
      mu_dtype: dtype of the momentum (default: the params').
      nesterov: use the Nesterov look-ahead momentum.
      adaptive: scale by the dual norm ``⟨m̂, NS(m̂)⟩``.
      preconditioning: ``"frobenius"``, ``"spectral"``, ``"aol"`` or
        ``"schatten"`` (see :func:`newton_schulz`).
      weight_dimension_numbers: a tree of :class:`MuonDimensionNumbers` with
        the structure of the params, or a function of the updates returning
        one; ``None``: every leaf is a matrix ``(fan_in, fan_out)``.
      ns_method: ``"newton_schulz"`` or ``"gram_newton_schulz"``
        (:func:`gram_newton_schulz`: the same map, iterated on ``X Xᴴ``).
      bias_correction: ``False``: ``m̂ = β·m + (1 − β)·g`` (Nesterov) or
        ``m̂ = m``, as Jordan's Muon and pytorch-optimizer do.

    Returns:
      A :class:`GradientTransformation` with state :class:`MuonState`.
    """
    owner = "scale_by_muon"
    _validate.integer(owner, "ns_steps", ns_steps)
    ns_coeffs = resolve_ns_coeffs(owner, ns_coeffs, ns_steps)
    check_ns_coeffs(owner, ns_coeffs, ns_steps)
    _validate.decay(owner, "beta", beta)
    _validate.non_negative(owner, "eps", eps)
    mu_dtype = _validate.float_dtype(owner, "mu_dtype", mu_dtype, complex_ok=True)
    _validate.flag(owner, "nesterov", nesterov)
    _validate.flag(owner, "adaptive", adaptive)
    _validate.flag(owner, "bias_correction", bias_correction)
    check_ns_method(owner, ns_method, preconditioning)
    method = newton_schulz if ns_method == "newton_schulz" else gram_newton_schulz
    orthogonalize = lambda x, c: method(x, c, ns_steps, preconditioning, eps)

    def init_fn(params):
        return MuonState(
            count=jnp.zeros([], jnp.int32),
            mu=state_zeros_like(params, mu_dtype),
            ns_coeffs=jnp.asarray(ns_coeffs),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        check_state(owner, state, MuonState)
        count = _maths.safe_increment(state.count)
        c1 = _maths.debias_factor(beta, count)
        c1_next = _maths.debias_factor(beta, _maths.safe_increment(count))

        def momentum(g, mu):
            mu = _maths.ema(g, mu, beta)
            if not bias_correction:
                mu_hat = beta * mu + _maths.one_minus(beta) * g if nesterov else mu
            elif nesterov:
                mu_hat = beta * (mu / c1_next) + _maths.one_minus(beta) * (g / c1)
            else:
                mu_hat = mu / c1
            return g, mu, mu_hat  # m̂ stays in the maths dtype (float32+)

        _, mu, mu_hat = map_leaves(
            momentum, updates, state.mu, names=["mu"], owner=owner, nout=3
        )
        steps = orthogonalize_tree(
            owner, mu_hat, weight_dimension_numbers, orthogonalize, state.ns_coeffs
        )

        def finish(g, m_hat, step):
            if adaptive:
                step = jnp.sum(m_hat.conj() * step).real * step
            return step

        updates = map_leaves(finish, updates, mu_hat, steps, owner=owner)
        return updates, MuonState(count=count, mu=mu, ns_coeffs=state.ns_coeffs)

    return GradientTransformation(init_fn, update_fn)


def scale_by_shape(
    weight_dimension_numbers: Any = None,
    consistent_rms: chex.Numeric | None = None,
) -> GradientTransformation:
    """Scales each matrix leaf by a factor of its shape (Muon's width transfer).

    ``u = sqrt(max(1, fan_out/fan_in))·g`` (Jordan's Muon), or with
    ``consistent_rms = ρ``: ``u = ρ·sqrt(max(fan_in, fan_out))·g``, which gives
    orthogonalised updates an RMS of about ρ whatever the shape (Liu et al.,
    2025; ρ = 0.2 matches AdamW's).

    Args:
      weight_dimension_numbers: as in :func:`scale_by_muon`.
      consistent_rms: ρ >= 0, or ``None`` for the width-transfer factor.

    Returns:
      A stateless :class:`GradientTransformation`.
    """
    owner = "scale_by_shape"
    if consistent_rms is not None:
        _validate.non_negative(owner, "consistent_rms", consistent_rms)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        dims = iter(resolve_dims(owner, weight_dimension_numbers, updates))

        def leaf(g):
            path, dim_nums = next(dims)
            _, _, fan_in, fan_out = matrix_view(owner, path, g.shape, dim_nums)
            if consistent_rms is None:
                if fan_in == 0:  # an empty matrix: nothing to scale
                    return g
                return jnp.sqrt(jnp.maximum(1, fan_out / fan_in)) * g
            return jnp.sqrt(jnp.maximum(fan_in, fan_out)) * consistent_rms * g

        return map_leaves(leaf, updates, owner=owner), state

    return GradientTransformation(init_empty_state, update_fn)


def _dims_or_none(x: Any) -> bool:
    return x is None or isinstance(x, MuonDimensionNumbers)


def muon_routing(dims_spec: Any) -> tuple[Callable, Callable]:
    """Which leaves :func:`gradtx.muon` gives to Muon, and how it sees them.

    Args:
      dims_spec: ``muon_weight_dimension_numbers``: a tree (or a function of
        the params returning one) of :class:`MuonDimensionNumbers` or ``None``
        (AdamW), the params' structure or a prefix of it; ``None``: Muon for
        every 2-D leaf.

    Returns:
      ``(param_labels, weight_dimension_numbers)``: functions of the params
      for :func:`gradtx.partition` (``"muon"`` or ``"adam"`` per leaf) and of
      the Muon part's (masked) updates for :func:`scale_by_muon`.
    """

    def spread(tree):
        """One MuonDimensionNumbers (Muon) or None (AdamW) per array leaf."""
        if dims_spec is None:
            return jax.tree.map(
                lambda x: MuonDimensionNumbers() if x.ndim == 2 else None, tree
            )
        spec = dims_spec(tree) if callable(dims_spec) else dims_spec
        try:
            return jax.tree.map(
                lambda d, sub: jax.tree.map(lambda _: d, sub),
                spec,
                tree,
                is_leaf=_dims_or_none,
            )
        except (ValueError, TypeError) as e:
            raise ValueError(
                "muon: `muon_weight_dimension_numbers` must be a tree of "
                "MuonDimensionNumbers or None (AdamW) with the structure of the "
                f"params, or a prefix of it.\n  got: {jax.tree.structure(spec)}\n"
                f"  params: {jax.tree.structure(tree)}"
            ) from e

    def labels(tree):
        return jax.tree.map(
            lambda d: "adam" if d is None else "muon",
            spread(tree),
            is_leaf=_dims_or_none,
        )

    def dims(masked_updates):
        return jax.tree.map(
            lambda d: MaskedNode() if d is None else d,
            spread(masked_updates),
            is_leaf=_dims_or_none,
        )

    return labels, dims
