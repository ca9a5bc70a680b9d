"""skip_on_spike: against a NumPy reference of the rule, on-device, bad input.

The reference (:func:`reference_rule`) is written from the docstring's rule:
one-sided z-score of each watched signal against an exponentially weighted
mean and variance of the accepted steps (exact mean and variance while
``n + 1 <= 1 / (1 - decay)``), no skipping during warm-up except for
non-finite signals, outliers kept out of the statistics, and after
``max_consecutive_skips`` skips a finite spike applied with the statistics
restarted from it. The inner optimizer is SGD with momentum, whose NumPy
step is two lines, so the updates and the inner state are checked too.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradtx import SkipOnSpikeState, sgd, skip_on_spike

LR, MOMENTUM = 0.1, 0.9
TINY = float(np.finfo(np.float32).tiny)


def reference_rule(losses, norms, *, threshold, warmup, decay, max_skips, min_rel):
    """One dict per step; ``losses``/``norms`` items are None when unwatched."""
    stats = {"loss": (0.0, 0.0), "norm": (0.0, 0.0)}
    count = consecutive = total = 0
    rows = []
    for loss, norm in zip(losses, norms, strict=True):
        xs = {"loss": loss, "norm": norm}
        z, outlier, finite = {}, False, True
        for key, x in xs.items():
            if x is None:
                z[key] = 0.0
                continue
            mean, var = stats[key]
            std = max(math.sqrt(var), min_rel * abs(mean), TINY)
            with np.errstate(all="ignore"):
                z[key] = float(np.float64(x - mean) / std) if count else 0.0
            outlier |= not z[key] <= threshold
            finite &= math.isfinite(x)
        skip = not finite or (outlier and count >= warmup)
        if max_skips is not None and skip and finite and consecutive >= max_skips:
            skip, count = False, 0
        if skip:
            consecutive, total = consecutive + 1, total + 1
        else:
            for key, x in xs.items():
                if x is None:
                    continue
                mean, var = stats[key] if count else (0.0, 0.0)
                alpha = max(1.0 - decay, 1.0 / (count + 1))
                delta = x - mean
                stats[key] = (
                    mean + alpha * delta,
                    (1 - alpha) * (var + alpha * delta**2),
                )
            count, consecutive = count + 1, 0
        rows.append(
            dict(
                skip=skip,
                count=count,
                consecutive=consecutive,
                total=total,
                z=z,
                stats=dict(stats),
            )
        )
    return rows


def _signals(steps=60, seed=0):
    """Losses and gradients with injected spikes, NaNs and infs."""
    rng = np.random.default_rng(seed)
    losses = 3.0 * np.exp(-np.arange(steps) / 80) + 0.05 * rng.standard_normal(steps)
    grads = [
        {"w": 0.1 * rng.standard_normal(3), "b": 0.1 * rng.standard_normal(2)}
        for _ in range(steps)
    ]
    losses[[4, 20, 21, 35]] *= [2, 8, 9, 12]  # 4: inside the warm-up
    for t in (7, 27, 44):  # 7: inside the warm-up
        grads[t] = {k: 60 * v for k, v in grads[t].items()}
    grads[50]["w"][1] = np.nan
    losses[53] = np.inf
    grads[56]["b"][0] = -np.inf
    return losses, grads


def _run(tx, losses, grads, with_value=True):
    params = {"w": jnp.zeros(3), "b": jnp.zeros(2)}
    state = tx.init(params)
    if with_value:
        step = jax.jit(lambda g, s, v: tx.update(g, s, params, value=v))
    else:
        step = jax.jit(lambda g, s, v: tx.update(g, s, params))
    out = []
    for loss, g in zip(losses, grads, strict=True):
        g = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), g)
        u, new = step(g, state, jnp.float32(loss))
        out.append((jax.device_get(u), jax.device_get(new), jax.device_get(state)))
        state = new
    return out


def _f32(losses):
    return [float(x) for x in np.asarray(losses, np.float32)]


def _norms(grads):
    return [
        float(np.sqrt(sum(np.sum(np.square(v.astype(np.float32))) for v in g.values())))
        for g in grads
    ]


def _check_against_reference(out, rows, grads):
    momentum = {"w": np.zeros(3), "b": np.zeros(2)}
    for t, ((u, state, before), row) in enumerate(zip(out, rows, strict=True)):
        where = f"step {t}"
        assert bool(state.skipped) == row["skip"], where
        assert int(state.count) == row["count"], where
        assert int(state.consecutive_skipped) == row["consecutive"], where
        assert int(state.total_skipped) == row["total"], where
        assert int(state.steps) == t + 1, where
        for key in ("loss", "norm"):
            mean, var = row["stats"][key]
            np.testing.assert_allclose(getattr(state, f"{key}_mean"), mean, 1e-5, 1e-7)
            np.testing.assert_allclose(getattr(state, f"{key}_var"), var, 1e-4, 1e-9)
            z = getattr(state, f"{key}_zscore")
            if math.isfinite(row["z"][key]):
                np.testing.assert_allclose(z, row["z"][key], 1e-4, 1e-3, err_msg=where)
            else:
                assert not np.isfinite(z), where
        if row["skip"]:
            for k in u:
                assert np.all(u[k] == 0) and u[k].dtype == np.float32, where
            same = jax.tree.map(np.array_equal, state.inner_state, before.inner_state)
            assert all(jax.tree.leaves(same)), where
        else:
            momentum = {k: grads[t][k] + MOMENTUM * momentum[k] for k in momentum}
            for k in u:
                np.testing.assert_allclose(u[k], -LR * momentum[k], 1e-5, 1e-7)


CONFIG = dict(threshold=4.0, warmup=10, decay=0.9, min_rel=1e-3)


def _tx(max_skips=None, watch=None, **overrides):
    c = {**CONFIG, **overrides}
    return skip_on_spike(
        sgd(LR, momentum=MOMENTUM),
        threshold=c["threshold"],
        warmup_steps=c["warmup"],
        decay=c["decay"],
        max_consecutive_skips=max_skips,
        watch=watch,
        min_relative_std=c["min_rel"],
    )


def test_matches_the_numpy_rule_over_60_steps_with_spikes():
    losses, grads = _signals()
    out = _run(_tx(), losses, grads)
    rows = reference_rule(_f32(losses), _norms(grads), max_skips=None, **_cfg())
    _check_against_reference(out, rows, grads)
    skipped = [t for t, r in enumerate(rows) if r["skip"]]
    # the spikes after warm-up, and every non-finite step; none in warm-up
    assert skipped == [20, 21, 27, 35, 44, 50, 53, 56]


def _cfg():
    return dict(
        threshold=CONFIG["threshold"],
        warmup=CONFIG["warmup"],
        decay=CONFIG["decay"],
        min_rel=CONFIG["min_rel"],
    )


def test_without_value_only_the_gradient_norm_is_watched():
    losses, grads = _signals()
    out = _run(_tx(), losses, grads, with_value=False)
    rows = reference_rule([None] * 60, _norms(grads), max_skips=None, **_cfg())
    _check_against_reference(out, rows, grads)
    assert out[-1][1].loss_mean == 0 and out[-1][1].loss_var == 0
    assert [t for t, r in enumerate(rows) if r["skip"]] == [27, 44, 50, 56]


def test_watching_the_loss_only():
    losses, grads = _signals()
    out = _run(_tx(watch="loss"), losses, grads)
    rows = reference_rule(_f32(losses), [None] * 60, max_skips=None, **_cfg())
    # a NaN gradient is not looked at (apply_if_finite is the guard for it)
    grads = [{k: np.nan_to_num(v) for k, v in g.items()} for g in grads]
    _check_against_reference(out[:50], rows[:50], grads[:50])
    assert [t for t, r in enumerate(rows) if r["skip"]] == [20, 21, 35, 53]


def test_max_consecutive_skips_applies_a_new_level_and_restarts_statistics():
    rng = np.random.default_rng(1)
    losses = np.concatenate(
        [1.0 + 0.01 * rng.standard_normal(15), 5.0 + 0.01 * rng.standard_normal(15)]
    )
    grads = [{"w": 0.1 * np.ones(3), "b": 0.1 * np.ones(2)} for _ in losses]
    tx = _tx(max_skips=3, watch="loss", warmup=5)
    out = _run(tx, losses, grads)
    rows = reference_rule(
        _f32(losses), [None] * 30, max_skips=3, **{**_cfg(), "warmup": 5}
    )
    _check_against_reference(out, rows, grads)
    # three skips, then the new level is applied and the warm-up starts over
    assert [r["skip"] for r in rows[15:20]] == [True, True, True, False, False]
    forced = out[18][1]
    assert int(forced.count) == 1 and float(forced.loss_mean) == np.float32(losses[18])
    assert int(forced.total_skipped) == 3 and int(out[-1][1].total_skipped) == 3


def test_non_finite_steps_are_skipped_even_in_warm_up_and_never_forced():
    grads = [{"w": np.ones(3), "b": np.ones(2)} for _ in range(6)]
    grads[1]["w"][0] = np.nan
    for t in (3, 4, 5):
        grads[t]["b"][1] = np.inf
    out = _run(_tx(max_skips=1), [1.0] * 6, grads)
    assert [bool(o[1].skipped) for o in out] == [False, True, False, True, True, True]
    assert int(out[-1][1].consecutive_skipped) == 3
    assert np.isfinite(out[-1][1].norm_mean) and np.isfinite(out[-1][1].norm_var)


def test_updates_keep_low_precision_dtypes_when_skipped():
    tx = skip_on_spike(sgd(LR), warmup_steps=1)
    params = jnp.zeros(3, jnp.bfloat16)
    state = tx.init(params)
    u, state = tx.update(jnp.array([1, jnp.nan, 1], jnp.bfloat16), state, params)
    assert u.dtype == jnp.bfloat16 and bool(state.skipped) and not jnp.any(u)


def test_the_step_is_decided_on_device_without_callbacks():
    tx = _tx()
    params = {"w": jnp.zeros(3), "b": jnp.zeros(2)}
    state = tx.init(params)
    jaxpr = str(
        jax.make_jaxpr(lambda g, s: tx.update(g, s, params, value=1.0))(params, state)
    )
    assert "callback" not in jaxpr and "cond" in jaxpr
    shapes = jax.eval_shape(
        lambda g, s: tx.update(g, s, params, value=1.0)[1], params, state
    )
    assert jax.tree.structure(shapes) == jax.tree.structure(state)
    assert all(
        a.shape == b.shape and a.dtype == b.dtype
        for a, b in zip(jax.tree.leaves(shapes), jax.tree.leaves(state), strict=True)
    )


def test_vmap_over_the_threshold_matches_separate_runs():
    losses, grads = _signals()
    losses = jnp.asarray(losses[:30], jnp.float32)
    gs = jax.tree.map(lambda *x: jnp.asarray(np.stack(x), jnp.float32), *grads[:30])
    params = {"w": jnp.zeros(3), "b": jnp.zeros(2)}

    def run(threshold):
        tx = _tx(threshold=threshold, warmup=5)

        def body(state, xs):
            g, loss = xs
            _, state = tx.update(g, state, params, value=loss)
            return state, state.skipped

        return jax.lax.scan(body, tx.init(params), (gs, losses))[1]

    flags = jax.jit(jax.vmap(run))(jnp.array([2.0, 4.0, 1e6]))
    for i, threshold in enumerate((2.0, 4.0, 1e6)):
        rows = reference_rule(
            _f32(losses),
            _norms(grads[:30]),
            max_skips=None,
            **{**_cfg(), "threshold": threshold, "warmup": 5},
        )
        assert flags[i].tolist() == [r["skip"] for r in rows], threshold


def test_the_loss_reaches_the_inner_optimizer():
    seen = []

    def update(u, s, p=None, **extra):
        seen.append("value" in extra)
        return u, s

    from gradtx import GradientTransformation

    inner = GradientTransformation(lambda p: (), update)
    tx = skip_on_spike(inner)
    tx.update(jnp.ones(2), tx.init(jnp.ones(2)), value=1.0)
    assert seen and all(seen)  # traced for each branch of the cond


BAD = [
    (dict(threshold=-1), ValueError, "`threshold`"),
    (dict(threshold=0.0), ValueError, "`threshold`"),
    (dict(threshold=float("nan")), ValueError, "`threshold`"),
    (dict(threshold="6"), TypeError, "`threshold`"),
    (dict(warmup_steps=0), ValueError, "`warmup_steps`"),
    (dict(warmup_steps=2.5), TypeError, "`warmup_steps`"),
    (dict(warmup_steps=True), TypeError, "`warmup_steps`"),
    (dict(decay=1.0), ValueError, "`decay`"),
    (dict(decay=-0.1), ValueError, "`decay`"),
    (dict(max_consecutive_skips=0), ValueError, "`max_consecutive_skips`"),
    (dict(max_consecutive_skips=1.5), TypeError, "`max_consecutive_skips`"),
    (dict(watch="lost"), ValueError, "`watch`"),
    (dict(watch=()), ValueError, "`watch`"),
    (dict(watch=("loss", "loss")), ValueError, "`watch`"),
    (dict(watch=3), ValueError, "`watch`"),
    (dict(min_relative_std=-1e-3), ValueError, "`min_relative_std`"),
]


@pytest.mark.parametrize(
    "kwargs,error,name",
    BAD,
    ids=[f"{k}={v!r}" for (d, _, _) in BAD for k, v in d.items()],
)
def test_bad_arguments_are_rejected_in_the_callers_words(kwargs, error, name):
    with pytest.raises(error) as info:
        skip_on_spike(sgd(0.1), **kwargs)
    message = str(info.value)
    assert message.startswith(f"skip_on_spike: {name}"), message
    assert repr(next(iter(kwargs.values()))) in message or "must" in message


def test_threshold_message_reads_as_the_issue_asks():
    with pytest.raises(ValueError, match=r"^skip_on_spike: `threshold` must be in \(0"):
        skip_on_spike(sgd(0.1), threshold=-1)


def test_bad_uses_of_update_are_named():
    with pytest.raises(TypeError, match=r"skip_on_spike: argument 0"):
        skip_on_spike(sgd)
    tx = skip_on_spike(sgd(0.1), watch=("loss", "grad_norm"))
    state = tx.init(jnp.zeros(2))
    with pytest.raises(
        TypeError, match=r"skip_on_spike: `watch` includes 'loss'.*`value=`"
    ):
        tx.update(jnp.ones(2), state)
    with pytest.raises(
        ValueError, match=r"skip_on_spike: `value` must be a real scalar"
    ):
        tx.update(jnp.ones(2), state, value=jnp.ones(2))
    with pytest.raises(
        ValueError, match=r"skip_on_spike: `state` must be the `SkipOnSpikeState`"
    ):
        tx.update(jnp.ones(2), state.inner_state, value=1.0)
    assert isinstance(state, SkipOnSpikeState)
