"""DoG (Ivgi et al. 2023, Algorithm 1) and DoWG (Khaled et al. 2023,
Algorithm 1), float64 NumPy. Norms are over all the leaves together.

DoG: r̄_t = max(r_ε, max_{k≤t} ‖x_k − x_0‖), η_t = r̄_t / sqrt(Σ_{k≤t} ‖g_k‖²),
x_{t+1} = x_t − η_t g_t. DoWG: r̄_t = max(r̄_{t−1}, ‖x_t − x_0‖),
v_t = v_{t−1} + r̄_t² ‖g_t‖², η_t = r̄_t² / sqrt(v_t). Following Optax (and
gradtx), ``eps`` is added inside DoG's root and to DoWG's denominator, r_ε is
given by ``init_step`` (the paper's r_ε = α(1 + ‖x_0‖) is the "heuristic"),
and DoWG starts from r̄_0² = ``init_estim_sq_dist`` (default ``eps``).
"""

import numpy as np
from reference_contrib_common import (
    AddDecayedWeights,
    Chain,
    Reference,
    ScaleByLearningRate,
    tree_sq_norm,
)


class ScaleByDog(Reference):
    def __init__(self, init_step, eps=1e-8):
        super().__init__()
        self.tag, self.value = init_step
        self.eps = eps

    def init(self, grads, params):
        if self.tag == "distance":
            r = self.value
        elif self.tag == "heuristic":
            r = self.value * (1.0 + np.sqrt(tree_sq_norm(params)))
        else:
            r = 0.0
        return dict(x0=[p.copy() for p in params], r=r, G=0.0)

    def step(self, grads, params, t):
        s = self.state
        dist = np.sqrt(
            tree_sq_norm([p - p0 for p, p0 in zip(params, s["x0"], strict=True)])
        )
        s["r"] = max(s["r"], dist)
        s["G"] += tree_sq_norm(grads)
        eta = s["r"] / np.sqrt(s["G"] + self.eps)
        if self.tag == "learning_rate" and t == 0:
            eta = self.value
        return [eta * g for g in grads]


class ScaleByDowg(Reference):
    def __init__(self, init_estim_sq_dist=None, eps=1e-4):
        super().__init__()
        self.r2 = eps if init_estim_sq_dist is None else init_estim_sq_dist
        self.eps = eps

    def init(self, grads, params):
        return dict(x0=[p.copy() for p in params], v=0.0)

    def step(self, grads, params, t):
        s = self.state
        d2 = tree_sq_norm([p - p0 for p, p0 in zip(params, s["x0"], strict=True)])
        self.r2 = max(self.r2, d2)
        s["v"] += self.r2 * tree_sq_norm(grads)
        eta = self.r2 / (np.sqrt(s["v"]) + self.eps)
        return [eta * g for g in grads]


def _decay(weight_decay, mask):
    return Chain() if weight_decay is None else AddDecayedWeights(weight_decay, mask)


def dog(learning_rate=1.0, init_step=("heuristic", 1e-6), eps=1e-8, weight_decay=None,
        mask=None):  # fmt: skip
    return Chain(
        _decay(weight_decay, mask),
        ScaleByDog(init_step, eps),
        ScaleByLearningRate(learning_rate),
    )


def dowg(learning_rate=1.0, init_estim_sq_dist=None, eps=1e-4, weight_decay=None,
         mask=None):  # fmt: skip
    return Chain(
        _decay(weight_decay, mask),
        ScaleByDowg(init_estim_sq_dist, eps),
        ScaleByLearningRate(learning_rate),
    )
