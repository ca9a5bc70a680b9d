"""ACProp (Zhuang et al. 2021, Algorithm 2 and the authors' code), float64 NumPy.

m_t = β1 m_{t−1} + (1 − β1) g_t, s_t = β2 s_{t−1} + (1 − β2)|g_t − m_{t−1}|² + ε̄,
update_t = g_t / (sqrt(s_{t−1} / (1 − β2^{t−1})) + ε) with the first step's
denominator 1 + ε (t = 1, 2, …). The paper's Algorithm 2 writes the prediction
error against m_t; the authors' code and Optax use m_{t−1}, as here.
"""

import numpy as np
from reference_contrib_common import (
    AddDecayedWeights,
    Chain,
    Reference,
    ScaleByLearningRate,
    sq,
)


class ScaleByAcprop(Reference):
    def __init__(self, b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16):
        super().__init__()
        self.b1, self.b2, self.eps, self.eps_root = b1, b2, eps, eps_root

    def init(self, grads, params):
        return [dict(m=np.zeros_like(g), s=np.zeros(g.shape)) for g in grads]

    def step(self, grads, params, t):
        out = []
        for st, g in zip(self.state, grads, strict=True):
            s_hat = 1.0 if t == 0 else st["s"] / (1.0 - self.b2**t)
            out.append(g / (np.sqrt(s_hat) + self.eps))
            st["s"] = (
                self.b2 * st["s"] + (1 - self.b2) * sq(g - st["m"]) + self.eps_root
            )
            st["m"] = self.b1 * st["m"] + (1 - self.b1) * g
        return out


def acprop(learning_rate, b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16, weight_decay=0.0,
           mask=None):  # fmt: skip
    return Chain(
        ScaleByAcprop(b1, b2, eps, eps_root),
        AddDecayedWeights(weight_decay, mask),
        ScaleByLearningRate(learning_rate),
    )
