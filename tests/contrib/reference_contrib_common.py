"""The base of the float64 NumPy references of :mod:`gradtx.contrib`.

Same interface and conventions as ``tests/reference.py`` (a small stateful
class per factory, ``update(grads, params)`` on lists of arrays, ``t`` the
number of updates done before the current one), except that complex leaves
stay complex (complex128), so that the same references check complex leaves:
wherever a rule squares a gradient element it takes ``|g|²``.
"""

import numpy as np


def as_array(x):
    x = np.asarray(x)
    return x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)


def value(x, t):
    """A hyperparameter that may be a number or a schedule ``step -> value``."""
    return float(x(t)) if callable(x) else float(x)


def sq(x):
    """``|x|²``, real."""
    return (np.conj(x) * x).real


def tree_sq_norm(leaves):
    """``Σ_leaves Σ |x|²``: the squared norm of a whole list of arrays."""
    return float(sum(np.sum(sq(x)) for x in leaves))


def real_dot(a, b):
    """The real inner product ``Σ Re(conj(a)·b)`` of two lists of arrays."""
    return float(sum(np.sum((np.conj(x) * y).real) for x, y in zip(a, b, strict=True)))


class Reference:
    """Counts steps; ``step`` sees the whole list of leaves (tree-wide rules)."""

    def __init__(self):
        self.count = 0
        self.state = None

    def update(self, grads, params=None):
        grads = [as_array(g) for g in grads]
        params = None if params is None else [as_array(p) for p in params]
        if self.state is None:
            self.state = self.init(grads, params)
        out = self.step(grads, params, self.count)
        self.count += 1
        return [as_array(u) for u in out]

    def init(self, grads, params):
        return None

    def step(self, grads, params, t):
        raise NotImplementedError


class Chain(Reference):
    def __init__(self, *refs):
        super().__init__()
        self.refs = list(refs)

    def step(self, grads, params, t):
        for ref in self.refs:
            grads = ref.update(grads, params)
        return grads


class AddDecayedWeights(Reference):
    """u = g + λ·θ where the mask is True (everywhere without a mask)."""

    def __init__(self, weight_decay=0.0, mask=None):
        super().__init__()
        self.weight_decay, self.mask = weight_decay, mask

    def step(self, grads, params, t):
        mask = [True] * len(grads) if self.mask is None else list(self.mask)
        wd = value(self.weight_decay, t)
        return [
            g + wd * p if m else g for g, p, m in zip(grads, params, mask, strict=True)
        ]


class ScaleByLearningRate(Reference):
    """u = −η(t)·g (or +η(t)·g when not flipped)."""

    def __init__(self, learning_rate, flip_sign=True):
        super().__init__()
        self.learning_rate, self.sign = learning_rate, -1.0 if flip_sign else 1.0

    def step(self, grads, params, t):
        return [self.sign * value(self.learning_rate, t) * g for g in grads]
