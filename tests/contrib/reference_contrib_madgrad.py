"""MADGRAD (Defazio & Jelassi 2021, Algorithm 1), float64 NumPy.

λ_k = (γ_k + ε)·sqrt(k + 1), s_{k+1} = s_k + λ_k g_k, ν_{k+1} = ν_k + λ_k |g_k|²,
z_{k+1} = x_0 − s_{k+1} / (ν_{k+1}^{1/3} + ε), x_{k+1} = (1 − c) x_k + c z_{k+1}
with c = 1 − momentum. The ε added to γ follows the authors' PyTorch code (and
Optax); the paper's λ_k is γ_k sqrt(k + 1). Output: x_{k+1} − x_k.
"""

import numpy as np
from reference_contrib_common import AddDecayedWeights, Chain, Reference, sq, value


class ScaleByMadgrad(Reference):
    def __init__(self, learning_rate, momentum=0.9, eps=1e-6):
        super().__init__()
        self.lr, self.momentum, self.eps = learning_rate, momentum, eps

    def init(self, grads, params):
        return [
            dict(x0=p.copy(), s=np.zeros_like(p), nu=np.zeros(p.shape)) for p in params
        ]

    def step(self, grads, params, k):
        lam = (value(self.lr, k) + self.eps) * np.sqrt(k + 1.0)
        c = 1.0 - self.momentum
        out = []
        for st, g, x in zip(self.state, grads, params, strict=True):
            st["s"] = st["s"] + lam * g
            st["nu"] = st["nu"] + lam * sq(g)
            z = st["x0"] - st["s"] / (np.cbrt(st["nu"]) + self.eps)
            out.append((1.0 - c) * x + c * z - x)
        return out


def madgrad(learning_rate, momentum=0.9, weight_decay=0.0, eps=1e-6):
    return Chain(
        AddDecayedWeights(weight_decay), ScaleByMadgrad(learning_rate, momentum, eps)
    )
