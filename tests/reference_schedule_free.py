"""Float64 NumPy reference for Schedule-Free SGD (Defazio et al. 2024).

Written from Algorithm 1 of "The Road Less Scheduled" in its three-sequence
form: the reference stores both the average ``x`` and the SGD iterate ``z``
(gradtx and Optax store only ``z`` and recompute ``x`` from the params ``y``)::

    y_t     = (1 − β1)·z_t + β1·x_t           (the params handed out)
    z_{t+1} = z_t − γ_t·(∇f(y_t) + λ·y_t)
    c_{t+1} = w_t / Σ_{i≤t} w_i,   w_t = (max_{i≤t} γ'_i)^r   (0 while Σ = 0)
    x_{t+1} = (1 − c_{t+1})·x_t + c_{t+1}·z_{t+1}

Conventions fixed by Optax (and so gradtx), which the paper leaves open:
``γ_t`` for the SGD step is the schedule at the 0-based step ``t``, while the
averaging weight uses ``γ'_t``, the schedule at the 1-based step ``t + 1``;
the warmup is linear from 0 over ``warmup_steps``. Same interface as
:mod:`reference` (``update(grads, params)`` on lists of arrays).
"""

from __future__ import annotations

from reference import _f64, _value


class ScheduleFreeSgd:
    def __init__(
        self,
        learning_rate=1.0,
        warmup_steps=None,
        b1=0.9,
        weight_decay=None,
        weight_lr_power=2.0,
        state_dtype=None,
    ):
        self.lr, self.warmup = learning_rate, warmup_steps
        self.b1, self.r = float(b1), float(weight_lr_power)
        self.wd = 0.0 if weight_decay is None else float(weight_decay)
        self.t, self.x, self.z = 0, None, None
        self.max_lr, self.weight_sum = 0.0, 0.0

    def gamma(self, t):
        if self.warmup is None:
            return _value(self.lr, t)
        return float(self.lr) * min(t, self.warmup) / self.warmup

    def update(self, grads, params):
        grads, y = _f64(grads), _f64(params)
        if self.x is None:
            self.x, self.z = [p.copy() for p in y], [p.copy() for p in y]
        t, b1 = self.t, self.b1
        self.max_lr = max(self.max_lr, self.gamma(t + 1))
        w = self.max_lr**self.r
        self.weight_sum += w
        c = w / self.weight_sum if self.weight_sum > 0 else 0.0
        self.z = [
            z - self.gamma(t) * (g + self.wd * p)
            for z, g, p in zip(self.z, grads, y, strict=True)
        ]
        self.x = [(1 - c) * x + c * z for x, z in zip(self.x, self.z, strict=True)]
        self.t += 1
        return [
            b1 * x + (1 - b1) * z - p for x, z, p in zip(self.x, self.z, y, strict=True)
        ]
