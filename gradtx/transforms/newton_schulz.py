"""Newton–Schulz orthogonalisation: the iteration, its presets, the Gram variant.

The quintic iteration maps a matrix ``G = U S Vᵀ`` to roughly ``U S' Vᵀ`` with
every singular value ``S'_ii`` pushed towards 1: a cheap, matmul-only
stand-in for the polar factor ``U Vᵀ``. :func:`newton_schulz` iterates on the
(wide) matrix itself; :func:`gram_newton_schulz` iterates on its small Gram
matrix ``X Xᴴ`` and applies the accumulated polynomial to ``X`` once (Dao
lab, 2026, "Gram Newton–Schulz"). :func:`orthogonalize_grouped` runs many
matrices of one shape as one batched call. Used by :mod:`.muon` and
:mod:`.normuon`.
"""

from collections.abc import Callable, Sequence
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from .._core.placement import auto_axes, placement_key

PRECONDITIONINGS = ("frobenius", "spectral", "aol", "schatten")
NS_METHODS = ("newton_schulz", "gram_newton_schulz")

# "standard" and "dion" are used as given (a triple: every step; rows: one per
# step). The other presets are pytorch-optimizer 4.1.0's tables, pinned here
# (other libraries publish different "Polar Express" numbers), and follow its
# rule: step i uses row min(i, rows - 1), for i < ns_steps.
NS_COEFFS_PRESETS = {
    "standard": (3.4445, -4.7750, 2.0315),
    "dion": (
        (4.0848, -6.8946, 2.9270),
        (3.9505, -6.3029, 2.6377),
        (3.7418, -5.5913, 2.3037),
        (2.8769, -3.1427, 1.2046),
        (2.8366, -3.0525, 1.2012),
    ),
    "original": (3.4445, -4.7750, 2.0315),
    "quintic": (
        (4.0848, -6.8946, 2.9270),
        (3.9505, -6.3029, 2.6377),
        (3.7418, -5.5913, 2.3037),
        (2.8769, -3.1427, 1.2046),
        (2.8366, -3.0525, 1.2012),
    ),
    "polar_express": (
        (8.237312490495555, -23.157747414558198, 16.680568411445915),
        (4.082441999064835, -2.893047735332586, 0.5252849256975648),
        (3.9263479922546582, -2.8547468034765298, 0.5318022422894988),
        (3.2982187133085143, -2.424541981026706, 0.48632008358844075),
        (2.2970369434552573, -1.63662558125903, 0.4002628455953627),
        (1.8763805351440397, -1.2347896577722228, 0.35891887501668385),
        (1.8564423485617974, -1.2132449880935525, 0.3568003487825883),
        (1.8749994008682747, -1.2499988017229169, 0.3749994008546422),
    ),
}
_SCHEDULED_PRESETS = ("quintic", "polar_express")
# The floor of the row sums (AOL) and of the Schatten-4 norm: fixed, as in Optax.
_PRECONDITION_FLOOR = 1e-8


def resolve_ns_coeffs(owner: str, ns_coeffs: Any, ns_steps: Any) -> Any:
    """The coefficients a preset name stands for (other values unchanged).

    ``"quintic"`` and ``"polar_express"`` give ``ns_steps`` rows, row ``i``
    being the table's ``min(i, rows − 1)`` (pytorch-optimizer's schedule).
    """
    if not isinstance(ns_coeffs, str):
        return ns_coeffs
    if ns_coeffs not in NS_COEFFS_PRESETS:
        raise ValueError(
            f"{owner}: `ns_coeffs` preset must be one of "
            f"{list(NS_COEFFS_PRESETS)}, got {ns_coeffs!r}."
        )
    table = NS_COEFFS_PRESETS[ns_coeffs]
    if ns_coeffs in _SCHEDULED_PRESETS and isinstance(ns_steps, int) and ns_steps > 0:
        return tuple(table[min(i, len(table) - 1)] for i in range(ns_steps))
    return table


def check_ns_method(owner: str, ns_method: Any, preconditioning: str) -> None:
    """Raises unless ``ns_method`` is known (and fits ``preconditioning``)."""
    if ns_method not in NS_METHODS:
        raise ValueError(
            f"{owner}: `ns_method` must be one of {NS_METHODS}, got {ns_method!r}."
        )
    if preconditioning not in PRECONDITIONINGS:
        raise ValueError(
            f"{owner}: `preconditioning` must be one of {PRECONDITIONINGS}, got "
            f"{preconditioning!r}."
        )


def _gram(x):
    return x @ x.T.conj()


def _prescale(x, a, preconditioning):
    """AOL row sums or the Schatten-4 norm: rescale ``X`` and ``A = X Xᴴ``."""
    if preconditioning == "aol":
        s = jax.lax.rsqrt(jnp.clip(jnp.abs(a).sum(axis=-1), min=_PRECONDITION_FLOOR))
        s = s[:, None]
        return x * s, a * s * s.T
    s = jax.lax.rsqrt(jnp.clip(jnp.linalg.norm(a), min=_PRECONDITION_FLOOR))
    return x * s, a * s**2


def _ns_step(x, c, a=None):
    """One quintic step ``c0·X + (c1·A + c2·A²)·X`` with ``A = X Xᴴ``."""
    a = _gram(x) if a is None else a
    b = c[1] * a + (c[2] * a) @ a
    return c[0] * x + b @ x


def _first_step(x, c, preconditioning):
    """The first step, rescaling ``X`` by AOL row sums or the Schatten-4 norm."""
    x, a = _prescale(x, _gram(x), preconditioning)
    return _ns_step(x, c, a)


def _normalise(x, preconditioning, eps):
    """The wide orientation of ``x``, scaled first where the method says."""
    transposed = x.shape[0] > x.shape[1]
    if transposed:
        x = x.T
    if preconditioning == "frobenius":
        x = x / (jnp.linalg.norm(x) + eps)
    elif preconditioning == "spectral":
        x = x / (jnp.linalg.norm(x, ord=2) + eps)
    return x, transposed


def newton_schulz(
    x: chex.Array,
    ns_coeffs: chex.Array,
    ns_steps: int = 5,
    preconditioning: str = "frobenius",
    eps: chex.Numeric = 1e-8,
) -> chex.Array:
    """Approximately orthogonalises the matrix ``x`` by Newton–Schulz steps.

    The wider orientation is used (``x`` is transposed when it has more rows
    than columns, and back), so ``X Xᴴ`` is the smaller Gram matrix. With
    ``"frobenius"`` (or ``"spectral"``) preconditioning ``x`` is first divided
    by its Frobenius (spectral) norm plus ``eps``; ``"aol"`` and ``"schatten"``
    rescale inside the first step instead.

    Args:
      x: a 2-D array.
      ns_coeffs: ``(c0, c1, c2)``, used ``ns_steps`` times (an unrolled loop),
        or shape ``(n, 3)``: one row per step (a ``lax.scan``, as in Optax).
      ns_steps: the number of steps for a single triple.
      preconditioning: one of ``"frobenius"``, ``"spectral"``, ``"aol"``,
        ``"schatten"``.
      eps: ε >= 0 added to the norm.

    Returns:
      An array of the shape of ``x``, singular values near 1.
    """
    x, transposed = _normalise(x, preconditioning, eps)
    coeffs = ns_coeffs.astype(x.dtype)
    special_first = preconditioning in ("aol", "schatten")

    def step(i, x, c):
        if not special_first:
            return _ns_step(x, c)
        if isinstance(i, int):
            return _first_step(x, c, preconditioning) if i == 0 else _ns_step(x, c)
        first = lambda x: _first_step(x, c, preconditioning)
        return jax.lax.cond(i == 0, first, lambda x: _ns_step(x, c), x)

    if coeffs.ndim == 1:
        for i in range(int(ns_steps)):
            x = step(i, x, coeffs)
    else:

        def body(carry, c):
            i, x = carry
            return (i + 1, step(i, x, c)), None

        (_, x), _ = jax.lax.scan(body, (jnp.zeros((), jnp.int32), x), coeffs)
    return x.T if transposed else x


def gram_newton_schulz(
    x: chex.Array,
    ns_coeffs: chex.Array,
    ns_steps: int = 5,
    preconditioning: str = "frobenius",
    eps: chex.Numeric = 1e-8,
    reset_steps: Sequence[int] = (2,),
) -> chex.Array:
    r""":func:`newton_schulz` carried out on the Gram matrix ``A = X Xᴴ``.

    Each step's polynomial :math:`P_k = c_0 I + c_1 A_k + c_2 A_k^2` is
    accumulated into :math:`Q = P_k \cdots P_0` and the Gram matrix updated
    as :math:`A_{k+1} = P_k A_k P_k`, so the rectangular ``X`` is multiplied
    only at the end (``X_K = Q X_0``) and at each of ``reset_steps``, where
    ``X`` and ``A`` are rebuilt from ``Q`` to stop rounding errors piling up
    in ``A``. In exact arithmetic the result is :func:`newton_schulz`'s;
    in float64 they agree to ~1e-8. A Python loop (``ns_coeffs`` rows are
    unrolled): every step is a few products of the small Gram matrix.

    Args:
      x, ns_coeffs, ns_steps, preconditioning, eps: as in :func:`newton_schulz`.
      reset_steps: the step indices before which ``X`` and ``A`` are rebuilt
        (pytorch-optimizer's default ``(2,)``).

    Returns:
      An array of the shape of ``x``, singular values near 1.
    """
    x, transposed = _normalise(x, preconditioning, eps)
    coeffs = ns_coeffs.astype(x.dtype)
    rows = (
        [coeffs] * int(ns_steps)
        if coeffs.ndim == 1
        else [coeffs[i] for i in range(coeffs.shape[0])]
    )
    a = _gram(x)
    if preconditioning in ("aol", "schatten"):
        x, a = _prescale(x, a, preconditioning)
    q = None
    for i, c in enumerate(rows):
        if i in reset_steps and q is not None:
            x = q @ x
            a, q = _gram(x), None
        poly = c[1] * a + c[2] * (a @ a)  # P_k − c0·I
        q = (
            poly + c[0] * jnp.eye(a.shape[0], dtype=a.dtype)
            if q is None
            else (c[0] * q + q @ poly)
        )
        if i + 1 < len(rows) and i + 1 not in reset_steps:
            ap = c[0] * a + a @ poly  # A·P_k
            a = c[0] * ap + ap @ poly  # P_k·A·P_k (they commute)
    if q is not None:
        x = q @ x
    return x.T if transposed else x


def orthogonalize_grouped(
    mats: Sequence[chex.Array],
    views: Sequence[tuple[Any, Callable, Callable]],
    orthogonalize: Callable[[chex.Array, chex.Array], chex.Array],
    coeffs: chex.Array,
) -> list:
    """``orthogonalize`` on every matrix of every array in ``mats``.

    ``views[i] = (key, to_batch, from_batch)``: ``to_batch`` views ``mats[i]``
    as a ``(batch, m, n)`` stack and ``from_batch`` undoes it; ``key`` says
    which arrays share that view. Arrays with the same key, shape, dtype and
    placement are concatenated along the batch axis and go through one
    ``vmap``-ped call (the same numbers as one call each), inside
    :func:`auto_axes` so that each result keeps its array's sharding.
    """
    groups: dict[Any, list[int]] = {}
    for i, (x, (key, _, _)) in enumerate(zip(mats, views, strict=True)):
        group = (key, x.shape, x.dtype, placement_key(x))
        groups.setdefault(group, []).append(i)
    ortho = jax.vmap(orthogonalize, in_axes=(0, None))
    out: list = [None] * len(mats)
    for members in groups.values():
        tbs = [views[i][1] for i in members]
        fbs = [views[i][2] for i in members]

        def run(c, *ms, tbs=tbs, fbs=fbs):
            flat = [tb(m) for tb, m in zip(tbs, ms, strict=True)]
            if len(flat) == 1:
                return [fbs[0](ortho(flat[0], c))]
            y = ortho(jnp.concatenate(flat), c)
            parts = jnp.split(y, np.cumsum([f.shape[0] for f in flat])[:-1])
            return [fb(p) for fb, p in zip(fbs, parts, strict=True)]

        arrays = [mats[i] for i in members]
        # Explicit axes: the iteration multiplies whole matrices.
        results = auto_axes(run, coeffs, *arrays, out_like=arrays)
        for i, r in zip(members, results, strict=True):
            out[i] = r
    return out
