"""A float64 NumPy NorMuon, written from the paper's update rule.

Li et al., 2025, "NorMuon: Making Muon more efficient and scalable": Muon's
orthogonalised momentum ``O`` (Newton–Schulz, here the classic quintic with
one coefficient triple or one per step), then per output neuron (row of the
``(d0, rest)`` view) ``v ← β2·v + (1 − β2)·mean_row(O²)``, ``Ô = O/(√v + ε)``,
rescaled to ``‖O‖_F`` (the official code's "preserve norm"); the step is
``lr·sqrt(max(1, d0/rest))`` times that, after decoupled decay ``W ← W(1 −
lr·λ)``. Momentum as in Jordan's Muon: ``m ← β·m + (1 − β)·g``, Nesterov
``β·m + (1 − β)·g``, no bias correction. Leaves of rank < 2 use AdamW.
The Gram variant is not modelled: it is the same map.
"""

from __future__ import annotations

import numpy as np

STANDARD = (3.4445, -4.7750, 2.0315)


def orthogonalize(x, coeffs=STANDARD, steps=5, eps=1e-10):
    """Quintic Newton–Schulz on a 2-D array, in its wide orientation."""
    x = np.asarray(x, np.float64)
    tall = x.shape[0] > x.shape[1]
    x = x.T if tall else x
    x = x / (np.linalg.norm(x) + eps)
    rows = np.asarray(coeffs, np.float64)
    rows = [rows] * steps if rows.ndim == 1 else list(rows)
    for c0, c1, c2 in rows:
        a = x @ x.T
        x = c0 * x + (c1 * a + c2 * a @ a) @ x
    return x.T if tall else x


class NorMuon:
    """``step(params, grads) -> params`` on dicts of NumPy arrays."""

    def __init__(
        self,
        lr,
        beta=0.95,
        b2=0.95,
        eps=1e-10,
        weight_decay=0.0,
        nesterov=True,
        coeffs=STANDARD,
        steps=5,
        consistent_rms=None,
        adam_lr=None,
        adam_b1=0.9,
        adam_b2=0.95,
        adam_eps=1e-10,
        adam_weight_decay=0.0,
    ):
        self.lr, self.beta, self.b2, self.eps = lr, beta, b2, eps
        self.wd, self.nesterov = weight_decay, nesterov
        self.coeffs, self.steps, self.rms = coeffs, steps, consistent_rms
        self.adam = (
            lr if adam_lr is None else adam_lr,
            adam_b1,
            adam_b2,
            adam_eps,
            adam_weight_decay,
        )
        self.state, self.t = {}, 0

    def _normuon(self, name, w, g):
        m = self.state.get(name, (np.zeros_like(w), np.zeros((w.shape[0], 1))))[0]
        v = self.state.get(name, (None, np.zeros((w.shape[0], 1))))[1]
        m = self.beta * m + (1 - self.beta) * g
        d = self.beta * m + (1 - self.beta) * g if self.nesterov else m
        rows, rest = w.shape[0], int(np.prod(w.shape[1:]))
        o = orthogonalize(d.reshape(rows, rest), self.coeffs, self.steps, self.eps)
        mean_sq = (o**2).sum(axis=1, keepdims=True) / max(rest, 1)
        v = self.b2 * v + (1 - self.b2) * mean_sq
        o_hat = o / (np.sqrt(v) + self.eps)
        u = o_hat * np.linalg.norm(o) / (np.linalg.norm(o_hat) + self.eps)
        if self.rms is None:
            scale = np.sqrt(max(1.0, rows / rest)) if rest else 1.0
        else:
            scale = self.rms * np.sqrt(max(rows, rest))
        self.state[name] = (m, v)
        return w * (1 - self.lr * self.wd) - self.lr * scale * u.reshape(w.shape)

    def _adamw(self, name, w, g):
        lr, b1, b2, eps, wd = self.adam
        m, v = self.state.get(name, (np.zeros_like(w), np.zeros_like(w)))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        self.state[name] = (m, v)
        m_hat, v_hat = m / (1 - b1**self.t), v / (1 - b2**self.t)
        return w * (1 - lr * wd) - lr * m_hat / (np.sqrt(v_hat) + eps)

    def step(self, params, grads):
        self.t += 1
        out = {}
        for name, w in params.items():
            w = np.asarray(w, np.float64)
            g = np.asarray(grads[name], np.float64)
            rule = self._normuon if w.ndim >= 2 else self._adamw
            out[name] = rule(name, w, g)
        return out
