"""Shampoo's inverse roots, computed as the authors' code does.

Every statistic of every leaf is rooted in one batch: zero-padded to the
largest size and masked (:func:`batched_inverse_roots`). Each root
``(L + ε λ_max I)^(-1/p)`` takes ``λ_max`` from a power iteration with a
fixed start, and the coupled Newton iteration of
:func:`gradtx.linalg.matrix_inverse_pth_root`, retried with a 10× larger
ridge while it does not converge; a root that still fails keeps the previous
one (:data:`INVERSE_FAILURE_THRESHOLD`).
"""

import jax
import jax.numpy as jnp
import numpy as np

from ..linalg import coupled_newton_root

# A root whose Newton error max|M − I| is at least this (or NaN) is not used:
# the previous preconditioner is kept (the authors' default threshold).
INVERSE_FAILURE_THRESHOLD = 0.1
# Newton is retried with a 10× larger ridge while its error exceeds this.
_RETRY_ERROR = 0.05
_RETRIES = 6
_HIGHEST = jax.lax.Precision.HIGHEST


def _largest_eigenvalue(mat, mask):
    """Power iteration (at most 100 steps, until the Rayleigh quotient moves
    by <= 1e-6) from a fixed start vector, zero on the padding."""
    n = mat.shape[-1]
    v0 = np.random.RandomState(1729).uniform(-1.0, 1.0, n)
    v0 = jnp.asarray(v0.astype(mat.dtype)) * mask

    def go_on(carry):
        i, _, _, moving = carry
        return (i < 100) & moving

    def step(carry):
        i, v, s, _ = carry
        v = v / jnp.linalg.norm(v)
        mv = jnp.matmul(mat, v, precision=_HIGHEST)
        s_new = jnp.dot(v, mv)
        return i + 1, mv, s_new, jnp.abs(s_new - s) > 1e-6

    start = (jnp.zeros((), jnp.int32), v0, jnp.zeros((), mat.dtype), jnp.asarray(True))
    return jax.lax.while_loop(go_on, step, start)[2]


def inverse_pth_root(mat, mask, p, matrix_eps):
    """``(L + ε λ_max I)^(-1/p)`` of the unmasked block of ``mat``, by coupled
    Newton iterations, and the final error ``max|M − I|``.

    ``mask`` (1 on the first ``n`` rows, 0 on zero padding) lets matrices of
    several sizes be batched. Newton (at most 100 steps) runs while the error
    is above 1e-6 and does not grow by 1.2× or more in a step (then the
    previous iterate is kept); the whole iteration is tried again with a 10×
    larger ridge, up to 6 tries, while the final error is above 0.05.
    """
    eye = jnp.diag(mask)
    mat = mat * mask[:, None] * mask[None, :]
    alpha = (-1.0 / p).astype(mat.dtype)
    ridge = matrix_eps * jnp.maximum(_largest_eigenvalue(mat, mask), 1e-25)
    if mat.shape[0] == 1:
        return (mat + ridge) ** alpha, jnp.zeros((), mat.dtype)

    def retry_on(carry):
        i, _, err = carry
        return (i == 0) | ((err > _RETRY_ERROR) & (i < _RETRIES))

    def attempt(carry):
        i = carry[0]
        damped = mat + ridge * (10**i).astype(mat.dtype) * eye
        h, err = coupled_newton_root(damped, eye, p, alpha, 100, 1e-6, _HIGHEST)
        return i + 1, h, err

    zero = jnp.zeros((), mat.dtype)
    start = (jnp.zeros((), jnp.int32), jnp.zeros_like(mat), zero)
    _, root, err = jax.lax.while_loop(retry_on, attempt, start)
    return root, err


def batched_inverse_roots(stats, old, exponents, matrix_eps):
    """New roots of every statistic, batched (zero-padded to the largest
    size), keeping the old root where Newton failed."""
    groups = {}
    for i, s in enumerate(stats):
        groups.setdefault(s.dtype, []).append(i)
    new = list(old)
    for idx in groups.values():
        size = max(stats[i].shape[0] for i in idx)
        pad = lambda x, n=size: jnp.pad(x, [(0, n - x.shape[0])] * 2)
        batch = jnp.stack([pad(stats[i]) for i in idx])
        masks = jnp.stack([jnp.arange(size) < stats[i].shape[0] for i in idx]).astype(
            batch.dtype
        )
        ps = jnp.asarray([exponents[i] for i in idx], jnp.int32)
        fn = lambda s, m, p: inverse_pth_root(s, m, p, matrix_eps)
        roots, errs = jax.vmap(fn)(batch, masks, ps)
        for k, i in enumerate(idx):
            n = stats[i].shape[0]
            bad = jnp.isnan(errs[k]) | (errs[k] >= INVERSE_FAILURE_THRESHOLD)
            new[i] = jnp.where(bad, old[i], roots[k, :n, :n].astype(old[i].dtype))
    return tuple(new)
