"""COCOB-Backprop, from Orabona & Tommasi 2017, Algorithm 2 (float64 NumPy).

The paper's variables, per coordinate i, with g̃ = −g (the negative gradient):
L_t = max(L_{t−1}, |g̃_t|), G_t = G_{t−1} + |g̃_t|,
Reward_t = max(Reward_{t−1} + (w_t − w_1)·g̃_t, 0), θ_t = θ_{t−1} + g̃_t,
w_{t+1} = w_1 + θ_t / (L_t·max(G_t + L_t, α·L_t)) · (L_t + Reward_t).
The paper starts L at 0 (and skips coordinates whose L is still 0); Optax
starts it at ``eps`` instead, which this reference follows. The output is the
displacement w_{t+1} − w_t.
"""

import numpy as np
from reference_contrib_common import (
    AddDecayedWeights,
    Chain,
    Reference,
    ScaleByLearningRate,
)


class ScaleByCocob(Reference):
    def __init__(self, alpha=100.0, eps=1e-8):
        super().__init__()
        self.alpha, self.eps = alpha, eps

    def init(self, grads, params):
        return [
            dict(w1=p.copy(), L=np.full(p.shape, self.eps), G=np.zeros(p.shape),
                 reward=np.zeros(p.shape), theta=np.zeros(p.shape))
            for p in params
        ]  # fmt: skip

    def step(self, grads, params, t):
        out = []
        for s, g, w in zip(self.state, grads, params, strict=True):
            neg = -g
            s["L"] = np.maximum(s["L"], np.abs(neg))
            s["G"] = s["G"] + np.abs(neg)
            s["reward"] = np.maximum(s["reward"] + (w - s["w1"]) * neg, 0.0)
            s["theta"] = s["theta"] + neg
            L = s["L"]
            frac = s["theta"] / (L * np.maximum(s["G"] + L, self.alpha * L))
            out.append(s["w1"] + frac * (L + s["reward"]) - w)
        return out


def cocob(learning_rate=1.0, alpha=100.0, eps=1e-8, weight_decay=0.0, mask=None):
    return Chain(
        AddDecayedWeights(weight_decay, mask),
        ScaleByLearningRate(learning_rate, flip_sign=False),
        ScaleByCocob(alpha, eps),
    )
