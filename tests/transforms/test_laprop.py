"""LaProp: NumPy float64 reference from the paper, and step for step against
``pytorch_optimizer.LaProp(foreach=False)`` (torch float64), 30 steps, 1e-6
absolute on O(1) params."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_modifiers as R
from public_references import pytorch_optimizer

import gradtx

SHAPES = [(4, 4), (3,), (2, 3, 4), ()]
STEPS = 30
GRAD = R.make_grad_fn(SHAPES, STEPS, seed=3)
P0 = R.start(SHAPES)
CASES = [
    dict(lr=0.02, wd=0.5, centered=False),
    dict(lr=0.02, wd=0.1, centered=True),
]


@pytest.mark.parametrize("c", CASES)
def test_matches_numpy_reference_and_pytorch_optimizer_step_for_step(c):
    tx = gradtx.laprop(c["lr"], weight_decay=c["wd"], centered=c["centered"], eps=1e-8)
    ours = R.run_gradtx(tx, P0, GRAD, STEPS)
    ref = R.LaProp(c["lr"], eps=1e-8, wd=c["wd"], centered=c["centered"])
    R.assert_close(ours, R.run_numpy(ref, P0, GRAD, STEPS), 1e-10)
    po = pytorch_optimizer()
    make = lambda ps: po.LaProp(
        ps,
        lr=c["lr"],
        weight_decay=c["wd"],
        centered=c["centered"],
        eps=1e-8,
        foreach=False,
    )
    R.assert_close(ours, R.run_torch(make, P0, GRAD, STEPS), 1e-6)


def test_first_step_is_minus_lr_sign_and_state_is_stable():
    opt = gradtx.laprop(0.1, centered=True)
    p = {"w": jnp.zeros((2, 3)), "s": jnp.zeros(()), "e": jnp.zeros((0,))}
    g = {"w": jnp.full((2, 3), -3.0), "s": jnp.array(0.2), "e": p["e"]}
    s0 = opt.init(p)
    u, s1 = jax.jit(opt.update)(g, s0, p)
    np.testing.assert_allclose(u["w"], 0.1, rtol=2e-5)  # float32 1 − b2
    np.testing.assert_allclose(u["s"], -0.1, rtol=2e-5)
    sig = lambda t: [(x.shape, x.dtype) for x in jax.tree.leaves(t)]
    assert sig(s0) == sig(s1) == sig(jax.eval_shape(opt.init, p))


def test_bfloat16_params_keep_dtype_and_stay_finite():
    opt = gradtx.laprop(0.1, weight_decay=0.1)
    p = {"w": jnp.ones((3, 4), jnp.bfloat16)}
    s = opt.init(p)
    for _ in range(3):
        u, s = opt.update({"w": jnp.full((3, 4), 1e-3, jnp.bfloat16)}, s, p)
    assert u["w"].dtype == jnp.bfloat16
    assert bool(jnp.all(jnp.isfinite(u["w"].astype(jnp.float32))))


def test_decay_after_step_shrinks_the_moved_params_and_takes_schedules():
    lr = lambda c: 0.5 * (c + 1)
    tx = gradtx.chain(
        gradtx.add_decayed_weights_after_step(0.2, lr),
        gradtx.scale_by_learning_rate(lr),
    )
    p, u = jnp.array([2.0]), jnp.array([1.0])
    s = tx.init(p)
    out, s = tx.update(u, s, p)
    np.testing.assert_allclose(p + out, (p - 0.5 * u) * (1 - 0.5 * 0.2))
    out, s = tx.update(u, s, p)
    np.testing.assert_allclose(p + out, (p - 1.0 * u) * (1 - 1.0 * 0.2))
    with pytest.raises(ValueError, match="add_decayed_weights_after_step"):
        gradtx.add_decayed_weights_after_step(0.1, 0.1).update(u, s[0], None)


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        (dict(learning_rate=-1.0), ValueError, "learning_rate"),
        (dict(b1=1.0), ValueError, "b1"),
        (dict(b2=-0.1), ValueError, "b2"),
        (dict(eps=-1.0), ValueError, "eps"),
        (dict(eps_root=float("nan")), ValueError, "eps_root"),
        (dict(weight_decay=-0.1), ValueError, "weight_decay"),
        (dict(centered=1), TypeError, "centered"),
        (dict(steps_before_using_centered=1.5), TypeError, "steps_before_using"),
        (dict(mu_dtype=jnp.int32), ValueError, "mu_dtype"),
    ],
)
def test_bad_inputs_name_the_argument(kwargs, error, name):
    with pytest.raises(error, match=f"laprop: `{name}"):
        gradtx.laprop(**kwargs)


def test_complex_leaf_is_rejected_by_path():
    opt = gradtx.laprop(0.1)
    p = {"z": jnp.ones(2, jnp.complex64)}
    with pytest.raises(
        TypeError, match=r"laprop: complex leaf \['z'\].*`scale_by_laprop`"
    ):
        opt.update(p, opt.init(p), p)
