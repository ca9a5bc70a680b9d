"""A float64 NumPy reference for GaLore, from the paper.

Zhao et al., 2024, "GaLore: Memory-Efficient LLM Training by Gradient
Low-Rank Projection", Algorithm 2: for an ``m × n`` gradient ``G_t``, every
``T`` steps (from step 0) take the SVD ``G_t = U S Vᵀ`` and ``P = U[:, :r]``
if ``m >= n`` (else ``Q = V[:, :r]``); run Adam on ``R_t = Pᵀ G_t`` (``G_t Q``)
and return ``α P N_t`` (``α N_t Qᵀ``). Leaves that are not matrices get Adam
on the full gradient. A leaf marked ``(rows, cols)`` is viewed as a matrix by
moving those axes first and reshaping.

SVD signs: a singular vector is defined up to sign. Adam is odd in its input,
so the step ``P·Adam(PᵀG)`` does not depend on the signs while ``P`` is
fixed, but the moments carried across a change of ``P`` do; the reference
takes the sign convention of LAPACK's ``gesdd`` (NumPy's, also JAX's on CPU).
"""

from __future__ import annotations

import math

import numpy as np
import reference as R


class Galore:
    def __init__(self, rank=128, update_proj_gap=200, scale=1.0, dims=None,
                 b1=0.9, b2=0.999, eps=1e-8):  # fmt: skip
        self.rank, self.gap, self.scale, self.dims = rank, update_proj_gap, scale, dims
        self.adam = R.ScaleByAdam(b1, b2, eps)
        self.count, self.P = 0, None

    def _matrix(self, i, g):
        dims = self.dims[i] if self.dims is not None else ((0,), (1,))
        if dims is None or (self.dims is None and g.ndim != 2):
            return None
        rows, cols = dims
        perm = tuple(rows) + tuple(cols)
        m = math.prod(g.shape[a] for a in rows)
        moved = np.transpose(g, perm)
        return perm, moved.shape, moved.reshape(m, -1)

    def update(self, grads, params=None):
        grads = [np.asarray(g, np.float64) for g in grads]
        if self.P is None:
            self.P = [None] * len(grads)
        low, views = [], []
        for i, g in enumerate(grads):
            view = self._matrix(i, g)
            views.append(view)
            if view is None:
                low.append(g)
                continue
            G = view[2]
            m, n = G.shape
            r = min(self.rank, m, n)
            if self.count % self.gap == 0:
                u, _, vt = np.linalg.svd(G, full_matrices=False)
                self.P[i] = u[:, :r] if m >= n else vt[:r].T
            low.append(self.P[i].T @ G if m >= n else G @ self.P[i])
        steps = self.adam.update(low)
        out = []
        for i, (view, u) in enumerate(zip(views, steps, strict=True)):
            if view is None:
                out.append(u)
                continue
            perm, moved_shape, G = view
            full = self.P[i] @ u if G.shape[0] >= G.shape[1] else u @ self.P[i].T
            inverse = np.argsort(perm)
            out.append(self.scale * np.transpose(full.reshape(moved_shape), inverse))
        self.count += 1
        return out
