"""Mechanic (Cutkosky, Defazio & Mehta 2023, Algorithm 1, memory-saving form),
float64 NumPy, wrapping a reference base optimizer.

Δ_{t−1} = (θ_0 − θ_t)/(S_t + ε) with S_t = Σ_i s_i; the base update u_t (a
descent step) gives Δ_t = Δ_{t−1} − u_t; h_t = ⟨g_t + λ S_t ‖g_t‖/(‖θ_t‖ + ε)·θ_t,
Δ_{t−1}⟩; per β_i = 1 − 10^{−i}: m_i ← max(β_i m_i, |h| + ε),
v_i ← β_i² v_i + h², r_i ← β_i r_i + clip(h, ±m_i(old))·s_i,
s_i ← (s_init/n·m_i + max(r_i, 0))/(sqrt(v_i) + ε); θ_{t+1} = θ_0 − S_{t+1} Δ_t.
The clipping of h (the authors' later addition) and ε follow Optax; θ_0 is the
params at the first update.
"""

import numpy as np
from reference_contrib_common import Reference, as_array, real_dot, tree_sq_norm


class Mechanize(Reference):
    def __init__(self, base_optimizer, weight_decay=1e-2, eps=1e-8, s_init=1e-6,
                 num_betas=6):  # fmt: skip
        super().__init__()
        self.base, self.wd, self.eps = base_optimizer, weight_decay, eps
        self.s_init, self.n = s_init, num_betas
        self.betas = np.array([1.0 - 0.1**i for i in range(1, num_betas + 1)])

    def init(self, grads, params):
        n = self.n
        return dict(x0=[p.copy() for p in params], r=np.zeros(n), m=np.zeros(n),
                    v=np.zeros(n), s=np.full(n, float(self.s_init)))  # fmt: skip

    def step(self, grads, params, t):
        st, eps = self.state, self.eps
        u = [as_array(x) for x in self.base.update(grads, params)]
        S = st["s"].sum()
        coef = (
            self.wd
            * S
            * np.sqrt(tree_sq_norm(grads))
            / (np.sqrt(tree_sq_norm(params)) + eps)
        )
        g = [gi + coef * p for gi, p in zip(grads, params, strict=True)]
        d_prev = [(x0 - p) / (S + eps) for x0, p in zip(st["x0"], params, strict=True)]
        delta = [d - ui for d, ui in zip(d_prev, u, strict=True)]
        h = real_dot(g, d_prev)
        clipped = np.clip(h, -st["m"], st["m"])
        st["m"] = np.maximum(self.betas * st["m"], abs(h) + eps)
        st["v"] = self.betas**2 * st["v"] + h**2
        st["r"] = self.betas * st["r"] + clipped * st["s"]
        wealth = self.s_init / self.n * st["m"] + np.maximum(st["r"], 0.0)
        st["s"] = wealth / (np.sqrt(st["v"]) + eps)
        S_new = st["s"].sum()
        return [
            x0 - S_new * d - p for x0, d, p in zip(st["x0"], delta, params, strict=True)
        ]
