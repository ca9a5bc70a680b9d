"""A float64 NumPy reference for SAM, from the paper, as a sequence of updates.

Foret et al., 2021, "Sharpness-Aware Minimization for Efficiently Improving
Generalization", Algorithm 1: ε = ρ g / ‖g‖ (all leaves together), then the
base optimizer steps from θ with the gradient at θ + ε. Written as the updates
a transparent wrapper returns, one per call, for a cycle of ``k`` calls: calls
1..k−1 each move the params by ``ρ ĝ`` (ascent on the normalised gradient at
the current point), call ``k`` moves them back to the cached θ and adds the
outer optimizer's update (a :mod:`reference` optimizer) for the gradient at
the last adversarial point.
"""

from __future__ import annotations

import numpy as np


class Sam:
    def __init__(self, outer, rho, sync_period=2):
        self.outer, self.rho, self.k = outer, float(rho), sync_period
        self.calls, self.cache = 0, None

    def update(self, grads, params):
        grads = [np.asarray(g, np.float64) for g in grads]
        params = [np.asarray(p, np.float64) for p in params]
        i = self.calls % self.k
        self.calls += 1
        if i == 0:
            self.cache = params
        if i < self.k - 1:
            norm = np.sqrt(sum(float(np.sum(g * g)) for g in grads))
            return [self.rho * g / norm for g in grads]
        outer = self.outer.update(grads, self.cache)
        return [c - p + u for c, p, u in zip(self.cache, params, outer, strict=True)]
