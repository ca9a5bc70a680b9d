"""Float64 NumPy references for MoMo and MoMo-Adam, from the paper.

Schaipp, Ohana, Eickenberg, Defazio & Gower, 2023, "MoMo: Momentum Models for
Adaptive Learning Rates" (Algorithms 1 and 2, with the proximal weight decay
of their Section 5 and the online lower-bound estimate "MoMo*"). With ``k``
the 1-based step, ``f_k`` the loss and ``x`` the params::

    d_k = β d + (1 − β) g_k;  f̄_k = β f̄ + (1 − β) f_k;  γ_k = β γ + (1 − β)⟨g_k, x⟩
    (MoMo: β = 0 at k = 1, i.e. the averages start at their first values;
     MoMo-Adam: zero-started, with ρ_k = 1 − β1^k and D_k = ε + sqrt(v_k / (1 − β2^k)))
    τ_k = min(α/ρ_k, ((1 + αλ)(f̄_k − ρ_k f_* − γ_k) + ⟨d_k, x⟩)_+ / ‖d_k‖²_{D⁻¹})
    x ← (x − τ_k D⁻¹ d_k) / (1 + αλ)                      (the paper)
    x ← x / (1 + αλ) − τ_k D⁻¹ d_k                          (optax_decay=True)

``optax_decay`` selects the form Optax (and so gradtx) uses; it equals the
paper's for λ = 0.
"""

from __future__ import annotations

import numpy as np
from reference import _Reference, _value


class Momo(_Reference):
    def __init__(self, learning_rate=1.0, beta=0.9, lower_bound=0.0,
                 weight_decay=0.0, adapt_lower_bound=False, *,
                 optax_decay=False):  # fmt: skip
        super().__init__()
        self.lr, self.wd, self.f0 = learning_rate, float(weight_decay), lower_bound
        self.adapt, self.optax_decay = adapt_lower_bound, optax_decay
        self.betas = (float(beta), None)
        self.fbar = self.gamma = 0.0
        self.lb = float(lower_bound)

    def init_leaf(self, g):
        return {"d": np.zeros_like(g), "v": np.zeros_like(g)}

    def _precond(self, st, k):
        return np.ones_like(st["d"]), 1.0  # D = 1, ρ = 1

    def _moments(self, g, st, b):
        st["d"] = b * st["d"] + (1 - b) * g

    def update(self, grads, params, value):
        self.value = float(value)
        return super().update(grads, params)

    def step(self, grads, params, t):
        k, alpha, wd = t + 1, _value(self.lr, t), self.wd
        b = self.betas[0] if (t > 0 or self.betas[1] is not None) else 0.0
        for g, st in zip(grads, self.state, strict=True):
            self._moments(g, st, b)
        gx = sum(float(np.sum(g * p)) for g, p in zip(grads, params, strict=True))
        self.fbar = b * self.fbar + (1 - b) * self.value
        self.gamma = b * self.gamma + (1 - b) * gx
        pre = [self._precond(st, k) for st in self.state]
        rho = pre[0][1] if pre else 1.0
        norm = sum(
            float(np.sum(st["d"] ** 2 / D))
            for st, (D, _) in zip(self.state, pre, strict=True)
        )
        dot = sum(
            float(np.sum(st["d"] * p)) for st, p in zip(self.state, params, strict=True)
        )
        c = 1 + alpha * wd
        if self.adapt:
            cap = c * (self.fbar - self.gamma) + dot
            if cap < c * rho * self.lb:
                self.lb = max(cap / (2 * c * rho), self.f0)
        num = c * (self.fbar - rho * self.lb - self.gamma) + dot
        tau = (
            0.0
            if norm <= np.finfo(np.float64).eps
            else min(alpha / rho, max(num, 0.0) / norm)
        )
        if self.adapt:
            h = self.fbar + dot - self.gamma
            self.lb = max((h - 0.5 * tau * norm) / rho, self.f0)
        out = []
        for p, st, (D, _) in zip(params, self.state, pre, strict=True):
            step = tau * st["d"] / D
            new = p / c - step if self.optax_decay else (p - step) / c
            out.append(new - p)
        return out


class MomoAdam(Momo):
    def __init__(self, learning_rate=1e-2, b1=0.9, b2=0.999, eps=1e-8,
                 lower_bound=0.0, weight_decay=0.0, adapt_lower_bound=False, *,
                 optax_decay=False):  # fmt: skip
        super().__init__(learning_rate, b1, lower_bound, weight_decay,
                         adapt_lower_bound, optax_decay=optax_decay)  # fmt: skip
        self.betas, self.eps = (float(b1), float(b2)), float(eps)

    def _moments(self, g, st, b):
        b2 = self.betas[1]
        st["d"] = b * st["d"] + (1 - b) * g
        st["v"] = b2 * st["v"] + (1 - b2) * g * g

    def _precond(self, st, k):
        b1, b2 = self.betas
        return self.eps + np.sqrt(st["v"] / (1 - b2**k)), 1 - b1**k
