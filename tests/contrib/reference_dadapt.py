"""A float64 NumPy reference for D-Adapted AdamW, from the paper.

Defazio & Mishchenko, 2023, "Learning-Rate-Free Learning by D-Adaptation",
the Adam variant (its Algorithm "D-Adapted Adam", with decoupled weight decay
as in AdamW). The rule, with ``t`` the 1-based step, ``λ_t`` the learning-rate
factor, ``β = sqrt(β2)``::

    δ_t = d_{t-1} · λ_t · sqrt(1 − β2^t) / (1 − β1^t)
    r_t = ⟨g_t, s_{t-1} / (sqrt(v_{t-1}) + ε)⟩        (all leaves together)
    m_t = β1 m + (1 − β1) δ_t g_t;  v_t = β2 v + (1 − β2) g_t²
    s_t = β s + (1 − β) δ_t g_t;    n_t = β n + (1 − β) δ_t r_t
    d_t = max(d_{t-1}, n_t / ((1 − β) ‖s_t‖₁))
    θ_t = θ_{t-1} − δ_t w θ_{t-1} − m_t / (sqrt(v_t) + ε)
"""

from __future__ import annotations

import numpy as np
from reference import _Reference, _value


class DadaptAdamw(_Reference):
    def __init__(self, learning_rate=1.0, betas=(0.9, 0.999), eps=1e-8,
                 estim_lr0=1e-6, weight_decay=0.0):  # fmt: skip
        super().__init__()
        self.lr = learning_rate
        self.b1, self.b2 = map(float, betas)
        self.eps, self.d, self.wd = float(eps), float(estim_lr0), float(weight_decay)
        self.n = 0.0

    def init_leaf(self, g):
        return {k: np.zeros_like(g) for k in ("m", "v", "s")}

    def step(self, grads, params, t):
        b1, b2, eps, k = self.b1, self.b2, self.eps, t + 1
        beta = np.sqrt(b2)
        delta = self.d * _value(self.lr, t) * np.sqrt(1 - b2**k) / (1 - b1**k)
        r = sum(
            float(np.sum(g * st["s"] / (np.sqrt(st["v"]) + eps)))
            for g, st in zip(grads, self.state, strict=True)
        )
        out = []
        for g, p, st in zip(grads, params, self.state, strict=True):
            st["m"] = b1 * st["m"] + (1 - b1) * delta * g
            st["v"] = b2 * st["v"] + (1 - b2) * g * g
            st["s"] = beta * st["s"] + (1 - beta) * delta * g
            out.append(-delta * self.wd * p - st["m"] / (np.sqrt(st["v"]) + eps))
        self.n = beta * self.n + (1 - beta) * delta * r
        l1 = sum(float(np.sum(np.abs(st["s"]))) for st in self.state)
        self.d = max(self.d, self.n / ((1 - beta) * l1))
        return out
