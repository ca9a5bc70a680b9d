"""A float64 NumPy SOAP, written from the paper (Vyas et al., 2024, Algorithm 3)
with the step schedule of the authors' code: the first call only builds the
factors and bases; from the second, Adam runs in the eigenbasis (first moment
in the original space, second moment in the rotated one, bias correction with
``k = t - 1``); the params are decayed after the step; then the factors are
updated; after calls ``f+1, 2f+1, …`` one power iteration and a QR refresh the
bases, the second moment permuted by the estimated eigenvalues.
"""

import math

import numpy as np


def merged_shape(shape, max_dim):
    out, prod = [], 1
    for n in shape:
        prod *= n
        if prod > max_dim:
            out.append(prod // n)
            prod = n
    out.append(prod)
    return tuple(out)


def _rotate(x, bases, view, back=False):
    """Applies ``Q_iᵀ`` (or ``Q_i``) along every axis ``i`` with a basis."""
    y = x.reshape(view)
    for axis, q in bases.items():
        m = q if back else q.T
        y = np.moveaxis(np.tensordot(m, np.moveaxis(y, axis, 0), axes=1), 0, axis)
    return y.reshape(x.shape)


def _unfold(g, axis):
    return np.moveaxis(g, axis, 0).reshape(g.shape[axis], -1)


def _eigvecs_desc(a):
    v = np.linalg.eigh(a)[1]
    return v[:, ::-1]


class Soap:
    """SOAP on one array leaf, in float64."""

    def __init__(self, shape, lr, b1, b2, shampoo_b2=None, eps=1e-8,
                 weight_decay=0.0, frequency=10, max_dim=10000, merge=False,
                 precondition_1d=False, normalize=False, correct_bias=True,
                 refresh="power_qr"):  # fmt: skip
        self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps
        self.bs = b2 if shampoo_b2 is None else shampoo_b2
        self.wd, self.f, self.normalize = weight_decay, frequency, normalize
        self.correct_bias, self.refresh = correct_bias, refresh
        shape = tuple(shape)
        if len(shape) == 0 or math.prod(shape) == 0:
            self.view, axes = shape, []
        elif len(shape) == 1:
            self.view = shape
            axes = [0] if precondition_1d and shape[0] <= max_dim else []
        else:
            self.view = merged_shape(shape, max_dim) if merge else shape
            axes = [i for i, n in enumerate(self.view) if n <= max_dim]
        self.L = {i: np.zeros((self.view[i],) * 2) for i in axes}
        self.Q = {}
        self.m = np.zeros(shape)
        self.v = np.zeros(shape)
        self.t = 0

    def _accumulate(self, g):
        gv = g.reshape(self.view)
        for i in self.L:
            u = _unfold(gv, i)
            self.L[i] = self.bs * self.L[i] + (1 - self.bs) * (u @ u.T)

    def step(self, p, g):
        """The new params after the gradient ``g`` at ``p``."""
        p, g = np.asarray(p, np.float64), np.asarray(g, np.float64)
        self.t += 1
        if self.t == 1:
            self._accumulate(g)
            self.Q = {i: _eigvecs_desc(a) for i, a in self.L.items()}
            return p
        k = self.t - 1
        self.m = self.b1 * self.m + (1 - self.b1) * g
        gr = _rotate(g, self.Q, self.view)
        self.v = self.b2 * self.v + (1 - self.b2) * gr**2
        mr = _rotate(self.m, self.Q, self.view)
        u = _rotate(mr / (np.sqrt(self.v) + self.eps), self.Q, self.view, back=True)
        if self.normalize and u.size:
            u = u / (np.sqrt(np.mean(u**2)) + self.eps)
        c = math.sqrt(1 - self.b2**k) / (1 - self.b1**k) if self.correct_bias else 1.0
        p = (p - self.lr * c * u) * (1 - self.lr * self.wd)
        self._accumulate(g)
        if k % self.f == 0:
            self._refresh()
        return p

    def _refresh(self):
        v = self.v.reshape(self.view)
        for i, a in self.L.items():
            q = self.Q[i]
            power = a @ q
            order = np.argsort(-np.einsum("ij,ij->j", q, power), kind="stable")
            v = np.take(v, order, axis=i)
            if self.refresh == "eigh":
                self.Q[i] = _eigvecs_desc(a)
            else:
                self.Q[i] = np.linalg.qr(power[:, order])[0]
        self.v = v.reshape(self.v.shape)
