"""Float64 NumPy reference for Sophia (Liu et al. 2023).

Written from Algorithm 3 of "Sophia: A Scalable Stochastic Second-order
Optimizer for Language Model Pre-training", per array::

    m_t = β1·m_{t−1} + (1 − β1)·g_t
    u_t = clip(m_t / max(γ·h, ε), −ρ, ρ)
    θ_t = θ_{t−1} − η_t·(u_t + λ·θ_{t−1})
    every k steps:  h ← β2·h + (1 − β2)·ĥ(θ_{t−1})

``ĥ`` is the exact Hessian diagonal, given as a function (Hutchinson's
estimate equals it for a separable objective, which the tests use).

Conventions fixed by Optax (after Levanter), and so by gradtx, where the
paper's Algorithm 3 differs: ``m`` is bias-corrected (``m / (1 − β1^t)``); the
estimate is refreshed on steps 1, k + 1, 2k + 1, … *after* ``u_t`` is formed,
so ``u_t`` uses the ``h`` of the previous refresh (``h = 0`` on the first step,
whose update is then ``ρ·sign(g)`` clipped); weight decay goes through the
same learning rate as the step; η is the schedule at the 0-based step.
"""

from __future__ import annotations

import numpy as np
from reference import _f64, _value


class Sophia:
    def __init__(
        self,
        learning_rate,
        b1=0.965,
        b2=0.99,
        eps=1e-8,
        weight_decay=1e-4,
        gamma=0.01,
        clip_threshold=1.0,
        update_interval=10,
        *,
        hessian_diag,
    ):
        self.lr, self.wd = learning_rate, weight_decay
        self.b1, self.b2, self.eps, self.gamma = map(float, (b1, b2, eps, gamma))
        self.rho, self.k = clip_threshold, int(update_interval)
        self.hessian_diag = hessian_diag
        self.t, self.m, self.h = 0, None, None

    def update(self, grads, params):
        grads, params = _f64(grads), _f64(params)
        if self.m is None:
            self.m = [np.zeros_like(g) for g in grads]
            self.h = [np.zeros_like(g) for g in grads]
        t, out = self.t, []
        for i, (g, p) in enumerate(zip(grads, params, strict=True)):
            self.m[i] = self.b1 * self.m[i] + (1 - self.b1) * g
            m_hat = self.m[i] / (1 - self.b1 ** (t + 1))
            u = m_hat / np.maximum(self.gamma * self.h[i], self.eps)
            if self.rho is not None:
                u = np.clip(u, -self.rho, self.rho)
            out.append(-_value(self.lr, t) * (u + _value(self.wd, t) * p))
        if t % self.k == 0:
            diag = self.hessian_diag(params)
            self.h = [
                self.b2 * h + (1 - self.b2) * d
                for h, d in zip(self.h, diag, strict=True)
            ]
        self.t += 1
        return out
