"""PSGD-Kron in float64 NumPy, written from Li's papers.

The Kronecker preconditioner is formed as a full matrix: for a leaf of shape
``(d_1, …, d_k)`` (row-major ``vec``), ``Q = Q_1 ⊗ … ⊗ Q_k`` (a diagonal
factor as a diagonal matrix), ``a = Q vec(h)``, ``b = Q^{-T} vec(v)``; the
fitting step of factor ``i`` uses the unfoldings ``A_(i) A_(i)^T`` and
``B_(i) B_(i)^T``; the update is ``Q^T Q vec(m̂)``, its RMS capped at 1.1. A
scalar is a leaf of shape ``(1,)`` with one diagonal factor. The probes and
the decisions (update the factors? rebalance them first?) are inputs, so the
rule is checked for a given sequence of them.
"""

import numpy as np

DAMPING = float(np.sqrt(np.finfo(np.float32).eps))


def triangular(shape, max_size=8192, min_ndim=2, mode=None):
    """True where a dimension gets a triangular factor."""
    out = []
    largest = max(range(len(shape)), key=lambda i: (shape[i], i)) if shape else None
    for i, n in enumerate(shape):
        diag = mode == "all_diag" or (mode == "one_diag" and i == largest)
        out.append(not (diag or n == 1 or n > max_size or len(shape) < min_ndim))
    return out


def init_factors(shape, scale=1.0, **kinds):
    """``(factors, triangular?)``; a scalar: one 1x1 diagonal factor."""
    if not shape:
        return [np.array([[scale]])], [False]
    s = scale ** (1 / len(shape))
    return [s * np.eye(n) for n in shape], triangular(shape, **kinds)


def norm_lower_bound(a):
    top = np.max(np.abs(a))
    if top == 0:
        return 0.0
    b = a / top
    col, row = np.sum(b * b, axis=0), np.sum(b * b, axis=1)
    i, j = int(np.argmax(col)), int(np.argmax(row))
    if col[i] > row[j]:
        x = b[:, i] @ b
        return top * np.linalg.norm((x / np.linalg.norm(x)) @ b.T)
    x = b @ b[j, :]
    return top * np.linalg.norm(b.T @ (x / np.linalg.norm(x)))


def _kron(factors):
    out = np.ones((1, 1))
    for q in factors:
        out = np.kron(out, q)
    return out


def _unfold_gram(x, shape, i):
    y = np.moveaxis(x.reshape(shape), i, 0).reshape(shape[i], -1)
    return y @ y.T


def fit(factors, tri, h, v, lr):
    """One fitting step of every factor (each from the same ``Q``)."""
    shape = h.shape
    q = _kron(factors)
    a = q @ h.ravel()
    b = np.linalg.solve(q.T, v.ravel())
    new = []
    for i, f in enumerate(factors):
        t1, t2 = _unfold_gram(a, shape, i), _unfold_gram(b, shape, i)
        if tri[i]:
            step = lr * np.triu(t1 - t2) / (norm_lower_bound(t1 + t2) + 2.2e-308)
            new.append(f - step @ f)
        else:
            d1, d2 = np.diag(t1), np.diag(t2)
            step = lr * (d1 - d2) / (np.max(np.abs(d1 + d2)) + 2.2e-308)
            new.append(np.diag(np.diag(f) * (1 - step)))
    return new


def balance(factors):
    if len(factors) < 2:
        return factors
    norms = [np.max(np.abs(f)) for f in factors]
    mean = np.prod(norms) ** (1 / len(norms))
    return [f * (mean / n) for f, n in zip(factors, norms, strict=False)]


def run(
    grad_fn,
    params,
    draws,
    steps,
    learning_rate,
    b1=0.9,
    preconditioner_lr=0.1,
    weight_decay=0.0,
    init_scale=1.0,
    momentum_into_precond_update=True,
    **kinds,
):
    """``steps`` steps of PSGD-Kron on a list of float64 arrays.

    ``draws(t, shapes) -> (update?, balance?, probes)`` at step ``t = 0, 1, …``.
    """
    params = [np.array(p, np.float64) for p in params]
    shapes = [p.shape for p in params]
    as_leaf = [s if s else (1,) for s in shapes]
    setups = [init_factors(s, init_scale, **kinds) for s in shapes]
    factors = [f for f, _ in setups]
    tris = [t for _, t in setups]
    mu = [np.zeros_like(p) for p in params]
    for t in range(steps):
        grads = grad_fn(params)
        do_update, do_balance, probes = draws(t, shapes)
        new_params = []
        for k, (p, g) in enumerate(zip(params, grads, strict=False)):
            mu[k] = b1 * mu[k] + (1 - b1) * g
            m = (mu[k] / (1 - b1 ** (t + 1))).reshape(as_leaf[k])
            fit_in = m if momentum_into_precond_update else g.reshape(as_leaf[k])
            if do_update:
                if do_balance:
                    factors[k] = balance(factors[k])
                v = np.asarray(probes[k], np.float64).reshape(as_leaf[k])
                h = fit_in + DAMPING * np.mean(np.abs(fit_in)) * v
                factors[k] = fit(factors[k], tris[k], h, v, preconditioner_lr)
            q = _kron(factors[k])
            u = (q.T @ q @ m.ravel()).reshape(p.shape)
            u = u / max(1.0, np.sqrt(np.mean(u * u)) / 1.1)
            new_params.append(p - learning_rate * (u + weight_decay * p))
        params = new_params
    return params, factors
