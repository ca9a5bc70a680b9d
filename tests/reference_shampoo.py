"""Float64 NumPy reference for Shampoo (Gupta et al. 2018; Anil et al. 2020).

Written from the papers' rule for the plain configuration: every dimension of
every leaf has its own factor (no merging, no blocks), per array of rank r::

    L_k ← β2·L_k + (1 − β2)·G_(k) G_(k)ᵀ          (L_k = ε·I at the start)
    P_k = (L_k + ε·λ_max(L_k)·I)^(−1/2r)           (exact, by eigh)
    D   = G ×_1 P_1 … ×_r P_r
    ρ   = grafting step (SGD: g; AdaGrad: g / (sqrt(Σ g²) + ε_D))
    s   = D·‖ρ‖/‖D‖                                 (layer-wise grafting)
    μ_s ← β1·μ_s + s + λw,   μ_ρ ← β1·μ_ρ + ρ + λw
    x, μ = (s + λw, μ_s) from step t0 on, (ρ + λw, μ_ρ) before
    w  ← w − η·(x + β1·μ)                           (Nesterov)

Steps are counted from 0; the roots are recomputed every step, and leaves of
rank 0 take the grafting step.
"""

from __future__ import annotations

import numpy as np


def _root(mat, p, eps):
    w, v = np.linalg.eigh(mat)
    damped = w + eps * max(w.max(), 1e-25)
    return (v * damped ** (-1.0 / p)) @ v.T


class Shampoo:
    def __init__(self, lr, b1=0.9, b2=0.999, diagonal_eps=1e-10, matrix_eps=1e-6,
                 weight_decay=0.0, start=5, graft="sgd"):  # fmt: skip
        self.lr, self.b1, self.b2 = lr, b1, b2
        self.deps, self.meps, self.wd, self.start = (
            diagonal_eps,
            matrix_eps,
            weight_decay,
            start,
        )
        self.graft, self.t, self.state = graft, 0, None

    def update(self, grads, params):
        grads = [np.asarray(g, np.float64) for g in grads]
        params = [np.asarray(p, np.float64) for p in params]
        if self.state is None:
            self.state = [
                dict(
                    stats=[self.meps * np.eye(d) for d in g.shape],
                    diag=np.zeros_like(g),
                    mu=np.zeros_like(g),
                    mu_r=np.zeros_like(g),
                )
                for g in grads
            ]
        out = []
        for g, p, st in zip(grads, params, self.state, strict=True):
            r = g
            if self.graft == "adagrad":
                st["diag"] = st["diag"] + g * g
                r = g / (np.sqrt(st["diag"]) + self.deps)
            if g.ndim == 0:
                s = r
            else:
                d = g
                for k in range(g.ndim):
                    gk = np.moveaxis(g, k, 0).reshape(g.shape[k], -1)
                    st["stats"][k] = (
                        self.b2 * st["stats"][k] + (1 - self.b2) * gk @ gk.T
                    )
                    pk = _root(st["stats"][k], 2 * g.ndim, self.meps)
                    d = np.moveaxis(np.tensordot(pk, d, axes=(1, k)), 0, k)
                s = d * np.linalg.norm(r) / np.linalg.norm(d)
            s, r = s + self.wd * p, r + self.wd * p
            st["mu"] = self.b1 * st["mu"] + s
            st["mu_r"] = self.b1 * st["mu_r"] + r
            x, mu = (s, st["mu"]) if self.t >= self.start else (r, st["mu_r"])
            out.append(-self.lr * (x + self.b1 * mu))
        self.t += 1
        return out
