"""Independent float64 NumPy references for gradtx's update rules.

Each rule is written from its paper's update rule, per array, in float64. A
reference is a small stateful class mirroring one gradtx (and Optax) factory:
same argument names, order and defaults; ``update(grads, params)`` takes and
returns lists of arrays (one per leaf) and advances the internal state.

Conventions (shared with gradtx and Optax):

* ``t`` is the number of updates done before the current one (0, 1, 2, ...);
  a schedule (learning rate, weight decay, step size) is evaluated at ``t``,
  bias corrections use the 1-based step ``t + 1``.
* ``*_dtype`` arguments are accepted for signature compatibility and ignored:
  references always compute in float64.
* Aliases hold no maths: each is a ``Chain`` of the primitive references.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Leaves = list[np.ndarray]


def _f64(xs) -> Leaves:
    return [np.asarray(x, dtype=np.float64) for x in xs]


def _value(x, t: int) -> float:
    """A hyperparameter that may be a number or a schedule ``step -> value``."""
    return float(x(t)) if callable(x) else float(x)


class _Reference:
    """Base class: counts steps, keeps per-leaf state, casts to float64 arrays."""

    def __init__(self):
        self.count = 0  # t: updates done before the current one
        self.state = None  # list (one dict per leaf), created on the first update

    def update(self, grads: Leaves, params: Leaves | None = None) -> Leaves:
        grads = _f64(grads)
        params = None if params is None else _f64(params)
        if self.state is None:
            self.state = [self.init_leaf(g) for g in grads]
        out = self.step(grads, params, self.count)
        self.count += 1
        return _f64(out)

    def init_leaf(self, g: np.ndarray) -> dict:
        return {}

    def step(self, grads: Leaves, params: Leaves | None, t: int) -> Leaves:
        """Default: the rule acts on each leaf independently."""
        return [self.leaf(s, g, t) for s, g in zip(self.state, grads, strict=True)]

    def leaf(self, s: dict, g: np.ndarray, t: int) -> np.ndarray:
        raise NotImplementedError


class Chain(_Reference):
    """Apply references in order, each to the previous one's output."""

    def __init__(self, *refs: _Reference):
        super().__init__()
        self.refs = list(refs)

    def step(self, grads, params, t):
        for ref in self.refs:
            grads = ref.update(grads, params)
        return grads


def _rms_denominator(nu_hat, eps: float, eps_in_sqrt: bool):
    return np.sqrt(nu_hat + eps) if eps_in_sqrt else np.sqrt(nu_hat) + eps


# ----------------------------------------------------------------- primitives
# Constructor signatures mirror Optax's exactly (positional order included).
# fmt: off


class Scale(_Reference):
    """Scaling: u = step_size · g."""

    def __init__(self, step_size):
        super().__init__()
        self.step_size = float(step_size)

    def leaf(self, s, g, t):
        return self.step_size * g


class ScaleBySchedule(_Reference):
    """Scheduled scaling: u = step_size_fn(t) · g, t counting from 0."""

    def __init__(self, step_size_fn):
        super().__init__()
        self.step_size_fn = step_size_fn

    def leaf(self, s, g, t):
        return _value(self.step_size_fn, t) * g


class ScaleByLearningRate(_Reference):
    """Gradient descent step: u = −η(t) · g, or +η(t) · g if flip_sign is False."""

    def __init__(self, learning_rate, *, flip_sign=True):
        super().__init__()
        self.learning_rate, self.sign = learning_rate, -1.0 if flip_sign else 1.0

    def leaf(self, s, g, t):
        return self.sign * _value(self.learning_rate, t) * g


class Trace(_Reference):
    """Heavy-ball momentum (Polyak 1964): v ← g + β·v; u = v, Nesterov u = g + β·v."""

    def __init__(self, decay, nesterov=False, accumulator_dtype=None):
        super().__init__()
        self.decay, self.nesterov = float(decay), nesterov

    def init_leaf(self, g):
        return {"v": np.zeros_like(g)}

    def leaf(self, s, g, t):
        s["v"] = g + self.decay * s["v"]
        return g + self.decay * s["v"] if self.nesterov else s["v"]


class Ema(_Reference):
    """Exponential moving average: e ← (1−β)·g + β·e; debiased u = e / (1 − β^(t+1))."""

    def __init__(self, decay, debias=True, accumulator_dtype=None):
        super().__init__()
        self.decay, self.debias = float(decay), debias

    def init_leaf(self, g):
        return {"e": np.zeros_like(g)}

    def leaf(self, s, g, t):
        s["e"] = (1.0 - self.decay) * g + self.decay * s["e"]
        return s["e"] / (1.0 - self.decay ** (t + 1)) if self.debias else s["e"]


class ScaleByRss(_Reference):
    """Adagrad (Duchi et al. 2011): s ← s + g²; u = g / sqrt(s + ε), 0 where s = 0."""

    def __init__(self, initial_accumulator_value=0.1, eps=1e-7):
        super().__init__()
        self.initial, self.eps = float(initial_accumulator_value), float(eps)

    def init_leaf(self, g):
        return {"s": np.full_like(g, self.initial)}

    def leaf(self, s, g, t):
        s["s"] = s["s"] + g * g
        positive = s["s"] > 0
        safe = np.where(positive, s["s"], 1.0)
        return np.where(positive, g / np.sqrt(safe + self.eps), 0.0)


class ScaleByRms(_Reference):
    """RMSProp (Hinton 2012): ν ← β·ν + (1−β)·g²; u = g / sqrt(ν̂ + ε)."""

    def __init__(self, decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True,
                 bias_correction=False):
        super().__init__()
        self.decay, self.eps, self.initial = map(float, (decay, eps, initial_scale))
        self.eps_in_sqrt, self.bias_correction = eps_in_sqrt, bias_correction

    def init_leaf(self, g):
        return {"nu": np.full_like(g, self.initial)}

    def _debias(self, x, t):
        return x / (1.0 - self.decay ** (t + 1)) if self.bias_correction else x

    def leaf(self, s, g, t):
        s["nu"] = self.decay * s["nu"] + (1.0 - self.decay) * g * g
        nu_hat = self._debias(s["nu"], t)
        return g / _rms_denominator(nu_hat, self.eps, self.eps_in_sqrt)


class ScaleByStddev(ScaleByRms):
    """Centered RMSProp (Graves 2013): μ ← β·μ + (1−β)·g; u = g / sqrt(ν̂ − μ̂² + ε)."""

    def init_leaf(self, g):
        return {"mu": np.zeros_like(g), **super().init_leaf(g)}

    def leaf(self, s, g, t):
        s["mu"] = self.decay * s["mu"] + (1.0 - self.decay) * g
        s["nu"] = self.decay * s["nu"] + (1.0 - self.decay) * g * g
        var = self._debias(s["nu"], t) - self._debias(s["mu"], t) ** 2
        return g / _rms_denominator(var, self.eps, self.eps_in_sqrt)


class ScaleByAdam(_Reference):
    """Adam (Kingma & Ba 2015): u = m̂ / (sqrt(v̂ + ε_root) + ε); NAdam (Dozat 2016)."""

    def __init__(self, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None, *,
                 nesterov=False):
        super().__init__()
        self.b1, self.b2, self.eps, self.eps_root = map(float, (b1, b2, eps, eps_root))
        self.nesterov = nesterov

    def init_leaf(self, g):
        return {"m": np.zeros_like(g), "v": np.zeros_like(g)}

    def leaf(self, s, g, t):
        b1, b2, n = self.b1, self.b2, t + 1
        s["m"] = b1 * s["m"] + (1.0 - b1) * g
        s["v"] = b2 * s["v"] + (1.0 - b2) * g * g
        if self.nesterov:  # look-ahead: next step's debiased β1·m plus today's g
            m_hat = b1 * s["m"] / (1.0 - b1 ** (n + 1)) + (1.0 - b1) * g / (1.0 - b1**n)
        else:
            m_hat = s["m"] / (1.0 - b1**n)
        v_hat = s["v"] / (1.0 - b2**n)
        return m_hat / (np.sqrt(v_hat + self.eps_root) + self.eps)


class ScaleByAmsgrad(_Reference):
    """AMSGrad (Reddi et al. 2018): v_max ← max(v_max, v̂); u = m̂ / (sqrt(v_max) + ε)."""

    def __init__(self, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None,
                 bias_correction_mu=True, bias_correction_nu=True):
        super().__init__()
        self.b1, self.b2, self.eps, self.eps_root = map(float, (b1, b2, eps, eps_root))
        self.correct_mu, self.correct_nu = bias_correction_mu, bias_correction_nu

    def init_leaf(self, g):
        return {"m": np.zeros_like(g), "v": np.zeros_like(g), "v_max": np.zeros_like(g)}

    def leaf(self, s, g, t):
        b1, b2, n = self.b1, self.b2, t + 1
        s["m"] = b1 * s["m"] + (1.0 - b1) * g
        s["v"] = b2 * s["v"] + (1.0 - b2) * g * g
        m_hat = s["m"] / (1.0 - b1**n) if self.correct_mu else s["m"]
        v_hat = s["v"] / (1.0 - b2**n) if self.correct_nu else s["v"]
        s["v_max"] = np.maximum(s["v_max"], v_hat)
        return m_hat / (np.sqrt(s["v_max"] + self.eps_root) + self.eps)


class ScaleByAdamax(_Reference):
    """AdaMax (Kingma & Ba 2015, §7.1): ν ← max(β2·ν, |g| + ε); u = m̂ / ν."""

    def __init__(self, b1=0.9, b2=0.999, eps=1e-8):
        super().__init__()
        self.b1, self.b2, self.eps = map(float, (b1, b2, eps))

    def init_leaf(self, g):
        return {"m": np.zeros_like(g), "nu": np.zeros_like(g)}

    def leaf(self, s, g, t):
        s["m"] = self.b1 * s["m"] + (1.0 - self.b1) * g
        s["nu"] = np.maximum(self.b2 * s["nu"], np.abs(g) + self.eps)
        return (s["m"] / (1.0 - self.b1 ** (t + 1))) / s["nu"]


class AddDecayedWeights(_Reference):
    """Weight decay term: u = g + λ(t)·p on leaves where mask is True (all if None)."""

    def __init__(self, weight_decay=0.0, mask=None):
        super().__init__()
        self.weight_decay, self.mask = weight_decay, mask

    def step(self, grads, params, t):
        if params is None:
            raise ValueError("add_decayed_weights needs params")
        mask = self.mask(params) if callable(self.mask) else self.mask
        mask = [True] * len(grads) if mask is None else list(mask)
        wd = _value(self.weight_decay, t)
        pairs = zip(grads, params, mask, strict=True)
        return [g + wd * p if m else g for g, p, m in pairs]


class Clip(_Reference):
    """Clipping by value: u = clip(g, −max_delta, max_delta)."""

    def __init__(self, max_delta):
        super().__init__()
        self.max_delta = float(max_delta)

    def leaf(self, s, g, t):
        return np.clip(g, -self.max_delta, self.max_delta)


class ClipByGlobalNorm(_Reference):
    """Pascanu et al. 2013: n = ‖g‖ over all leaves; u = g if n < c else g·c/n."""

    def __init__(self, max_norm):
        super().__init__()
        self.max_norm = float(max_norm)

    def step(self, grads, params, t):
        norm = np.sqrt(sum(float(np.sum(g * g)) for g in grads))
        if norm < self.max_norm:
            return grads
        return [g * (self.max_norm / norm) for g in grads]


# -------------------------------------------------------------------- aliases


class Sgd(Chain):
    """SGD (Robbins & Monro 1951), optional momentum: [trace] → lr."""

    def __init__(self, learning_rate, momentum=None, nesterov=False,
                 accumulator_dtype=None):
        refs = [] if momentum is None else [Trace(momentum, nesterov)]
        super().__init__(*refs, ScaleByLearningRate(learning_rate))


class Adagrad(Chain):
    """Adagrad (Duchi et al. 2011): scale_by_rss → lr."""

    def __init__(self, learning_rate, initial_accumulator_value=0.1, eps=1e-7):
        super().__init__(ScaleByRss(initial_accumulator_value, eps),
                         ScaleByLearningRate(learning_rate))


class Rmsprop(Chain):
    """RMSProp: scale_by_rms (scale_by_stddev if centered) → lr → [trace]."""

    def __init__(self, learning_rate, decay=0.9, eps=1e-8, initial_scale=0.0,
                 eps_in_sqrt=True, centered=False, momentum=None, nesterov=False,
                 bias_correction=False):
        scaler = ScaleByStddev if centered else ScaleByRms
        refs = [scaler(decay, eps, initial_scale, eps_in_sqrt, bias_correction),
                ScaleByLearningRate(learning_rate)]
        if momentum is not None:
            refs.append(Trace(momentum, nesterov))  # momentum AFTER the lr
        super().__init__(*refs)


class Adam(Chain):
    """Adam (Kingma & Ba 2015): scale_by_adam → lr."""

    def __init__(self, learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0,
                 mu_dtype=None, *, nesterov=False):
        super().__init__(ScaleByAdam(b1, b2, eps, eps_root, nesterov=nesterov),
                         ScaleByLearningRate(learning_rate))


class Nadam(Adam):
    """NAdam (Dozat 2016): adam with nesterov=True."""

    def __init__(self, learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0,
                 mu_dtype=None, *, nesterov=True):
        super().__init__(learning_rate, b1, b2, eps, eps_root, nesterov=nesterov)


class Adamw(Chain):
    """AdamW (Loshchilov & Hutter 2019), decoupled: scale_by_adam → decay → lr."""

    def __init__(self, learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0,
                 mu_dtype=None, weight_decay=1e-4, mask=None, *, nesterov=False):
        super().__init__(ScaleByAdam(b1, b2, eps, eps_root, nesterov=nesterov),
                         AddDecayedWeights(weight_decay, mask),
                         ScaleByLearningRate(learning_rate))


class Nadamw(Adamw):
    """NAdamW: adamw with nesterov=True."""

    def __init__(self, learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0,
                 mu_dtype=None, weight_decay=1e-4, mask=None, *, nesterov=True):
        super().__init__(learning_rate, b1, b2, eps, eps_root, None, weight_decay,
                         mask, nesterov=nesterov)


class Adamax(Chain):
    """AdaMax (Kingma & Ba 2015, §7.1): scale_by_adamax → lr."""

    def __init__(self, learning_rate, b1=0.9, b2=0.999, eps=1e-8):
        super().__init__(ScaleByAdamax(b1, b2, eps),
                         ScaleByLearningRate(learning_rate))


class Adamaxw(Chain):
    """AdaMax with decoupled weight decay: scale_by_adamax → decay → lr."""

    def __init__(self, learning_rate, b1=0.9, b2=0.999, eps=1e-8,
                 weight_decay=1e-4, mask=None):
        super().__init__(ScaleByAdamax(b1, b2, eps),
                         AddDecayedWeights(weight_decay, mask),
                         ScaleByLearningRate(learning_rate))


class Amsgrad(Chain):
    """AMSGrad (Reddi et al. 2018): scale_by_amsgrad → lr."""

    def __init__(self, learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0,
                 mu_dtype=None, bias_correction_mu=True, bias_correction_nu=True):
        super().__init__(ScaleByAmsgrad(b1, b2, eps, eps_root, None,
                                        bias_correction_mu, bias_correction_nu),
                         ScaleByLearningRate(learning_rate))


class AdamL2(Chain):
    """Adam + COUPLED L2 (λp added to g before Adam): decay → scale_by_adam → lr."""

    def __init__(self, learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0,
                 weight_decay=1e-4, mask=None, *, nesterov=False):
        super().__init__(AddDecayedWeights(weight_decay, mask),
                         ScaleByAdam(b1, b2, eps, eps_root, nesterov=nesterov),
                         ScaleByLearningRate(learning_rate))


# fmt: on

# ---------------------------------------------------------------------- runner


def run(ref, grad_fn: Callable[[Leaves], Leaves], params, steps: int) -> list[Leaves]:
    """Apply ``steps`` updates (params += updates); return params incl. the start."""
    params = _f64(params)
    trajectory = [params]
    for _ in range(steps):
        updates = ref.update(_f64(grad_fn(params)), params)
        params = _f64(p + u for p, u in zip(params, updates, strict=True))
        trajectory.append(params)
    return trajectory


REFERENCES = {
    "scale": Scale,
    "scale_by_schedule": ScaleBySchedule,
    "scale_by_learning_rate": ScaleByLearningRate,
    "trace": Trace,
    "ema": Ema,
    "scale_by_rss": ScaleByRss,
    "scale_by_rms": ScaleByRms,
    "scale_by_stddev": ScaleByStddev,
    "scale_by_adam": ScaleByAdam,
    "scale_by_amsgrad": ScaleByAmsgrad,
    "scale_by_adamax": ScaleByAdamax,
    "add_decayed_weights": AddDecayedWeights,
    "clip": Clip,
    "clip_by_global_norm": ClipByGlobalNorm,
    "sgd": Sgd,
    "adagrad": Adagrad,
    "rmsprop": Rmsprop,
    "adam": Adam,
    "nadam": Nadam,
    "adamw": Adamw,
    "nadamw": Nadamw,
    "adamax": Adamax,
    "adamaxw": Adamaxw,
    "amsgrad": Amsgrad,
    "adam_l2": AdamL2,
}
