"""MARS-AdamW: NumPy float64 reference from the paper, and step for step
against ``pytorch_optimizer.MARS(mars_type="adamw", optimize_1d=True)`` (torch
float64), 30 steps, 1e-6 absolute on O(1) params."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_modifiers as R
from public_references import pytorch_optimizer

import gradtx

SHAPES = [(4, 4), (3,), (2, 3, 4), ()]
STEPS = 30
# noise 0.3: some leaves' corrected gradients are clipped, others are not
GRAD = R.make_grad_fn(SHAPES, STEPS, seed=5, noise=0.3)
P0 = R.start(SHAPES)
CASES = [dict(lr=0.02, wd=0.0, gamma=0.025), dict(lr=0.02, wd=0.1, gamma=0.5)]


@pytest.mark.parametrize("c", CASES)
def test_matches_numpy_reference_and_pytorch_optimizer_step_for_step(c):
    # ε = 0: the reference adds ε before the √(1 − β2^t) correction
    # (ε/√(1 − β2^t) = 1e-7 in Adam's terms at step 1), 2e-6 apart at step 1
    # on a small element of c; everything else agrees to ~1e-15.
    lr, gamma, wd = c["lr"], c["gamma"], c["wd"]
    tx = gradtx.mars_adamw(lr, gamma=gamma, weight_decay=wd, eps=0.0)
    ours = R.run_gradtx(tx, P0, GRAD, STEPS)
    ref = R.MarsAdamW(lr, gamma=gamma, eps=0.0, wd=wd)
    R.assert_close(ours, R.run_numpy(ref, P0, GRAD, STEPS), 1e-10)
    po = pytorch_optimizer()
    make = lambda ps: po.MARS(
        ps,
        lr=lr,
        gamma=gamma,
        weight_decay=wd,
        eps=0.0,
        mars_type="adamw",
        optimize_1d=True,
        foreach=False,
    )
    R.assert_close(ours, R.run_torch(make, P0, GRAD, STEPS), 1e-6)


def test_scale_by_mars_corrects_and_clips_each_leaf():
    tx = gradtx.scale_by_mars(b1=0.5, gamma=0.5)  # coefficient 0.5
    p = {"a": jnp.zeros(2), "b": jnp.zeros(())}
    s = tx.init(p)
    c, s = tx.update({"a": jnp.array([0.3, 0.4]), "b": jnp.array(0.1)}, s)
    np.testing.assert_allclose(c["a"], [0.45, 0.6], rtol=1e-6)  # norm 0.75
    c, s = tx.update({"a": jnp.array([3.0, 4.0]), "b": jnp.array(0.1)}, s)
    # 3·(3, 4) − 0.5·(0.3, 0.4)... = (4.35, 5.8): norm 7.25, clipped to 1
    np.testing.assert_allclose(c["a"], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(c["b"], 0.1, rtol=1e-6)
    np.testing.assert_array_equal(s.prev_grad["a"], [3.0, 4.0])
    plain = gradtx.scale_by_mars(max_norm=None)
    assert gradtx.packed(plain) is not None  # elementwise without the clip


def test_jit_bf16_eval_shape_and_empty_leaves():
    opt = gradtx.mars_adamw(0.1, weight_decay=0.1)
    p = {"w": jnp.ones((3, 4), jnp.bfloat16), "e": jnp.zeros((0, 2), jnp.bfloat16)}
    g = {"w": jnp.full((3, 4), 2.0, jnp.bfloat16), "e": p["e"]}
    s0 = opt.init(p)
    u, s1 = jax.jit(opt.update)(g, s0, p)
    sig = lambda t: [(x.shape, x.dtype) for x in jax.tree.leaves(t)]
    assert sig(s0) == sig(s1) == sig(jax.eval_shape(opt.init, p))
    assert u["w"].dtype == jnp.bfloat16 and u["e"].shape == (0, 2)
    assert bool(jnp.all(jnp.isfinite(u["w"].astype(jnp.float32))))


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        (dict(learning_rate=-1.0), ValueError, "learning_rate"),
        (dict(b1=1.0), ValueError, "b1"),
        (dict(b2=1.5), ValueError, "b2"),
        (dict(gamma=-0.1), ValueError, "gamma"),
        (dict(eps=-1.0), ValueError, "eps"),
        (dict(weight_decay=-1.0), ValueError, "weight_decay"),
        (dict(max_norm=0.0), ValueError, "max_norm"),
        (dict(mu_dtype="int8"), ValueError, "mu_dtype"),
    ],
)
def test_bad_inputs_name_the_argument(kwargs, error, name):
    with pytest.raises(error, match=f"mars_adamw: `{name}`"):
        gradtx.mars_adamw(**kwargs)


def test_complex_leaf_is_rejected_by_path():
    opt = gradtx.mars_adamw(0.1)
    p = {"z": jnp.ones(2, jnp.complex64)}
    with pytest.raises(
        TypeError, match=r"mars_adamw: complex leaf \['z'\].*`scale_by_mars`"
    ):
        opt.update(p, opt.init(p), p)
