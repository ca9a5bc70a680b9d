"""cautious: the C-Optim mask around any optimizer.

Checked against the paper's C-AdamW in NumPy (float64) and, step for step,
against ``pytorch_optimizer.AdamP(cautious=True, delta=0)`` (torch float64;
``delta=0`` turns AdamP's projection off), 30 steps, 1e-6 absolute.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_modifiers as R
from public_references import pytorch_optimizer

import gradtx

SHAPES = [(4, 4), (3,), (2, 3, 4), ()]
STEPS = 30
GRAD = R.make_grad_fn(SHAPES, STEPS)
P0 = R.start(SHAPES)


def _adamp(lr, wd):
    po = pytorch_optimizer()
    return lambda ps: po.AdamP(
        ps, lr=lr, weight_decay=wd, delta=0.0, eps=0.0, cautious=True, foreach=False
    )


def test_masked_decay_matches_numpy_c_adamw_with_the_mask_over_the_decay():
    tx = gradtx.cautious(gradtx.adamw(0.05, weight_decay=0.1))
    ours = R.run_gradtx(tx, P0, GRAD, STEPS)
    ref = R.run_numpy(R.CautiousAdamW(0.05, wd=0.1), P0, GRAD, STEPS)
    R.assert_close(ours, ref, 1e-10)


def test_cautious_adam_matches_adamp_step_for_step():
    # ε = 0: AdamP adds ε before the √(1 − β2^t) correction (ε/√(1 − β2^t) in
    # Adam's terms), 2e-6 apart at step 1 on a gradient element of 0.01.
    tx = gradtx.cautious(gradtx.adam(0.05, eps=0.0))
    ours = R.run_gradtx(tx, P0, GRAD, STEPS)
    theirs = R.run_torch(_adamp(0.05, 0.0), P0, GRAD, STEPS)
    R.assert_close(ours, theirs, 1e-6)
    paper = R.run_numpy(R.CautiousAdamW(0.05, eps=0.0), P0, GRAD, STEPS)
    R.assert_close(ours, paper, 1e-10)


def test_decay_outside_the_mask_matches_adamp_and_the_paper():
    tx = gradtx.chain(
        gradtx.cautious(gradtx.scale_by_adam(eps=0.0), descent=False),
        gradtx.add_decayed_weights(0.1),
        gradtx.scale_by_learning_rate(0.05),
    )
    ours = R.run_gradtx(tx, P0, GRAD, STEPS)
    theirs = R.run_torch(_adamp(0.05, 0.1), P0, GRAD, STEPS)
    R.assert_close(ours, theirs, 1e-6)
    paper = R.run_numpy(
        R.CautiousAdamW(0.05, eps=0.0, wd=0.1, mask_decay=False), P0, GRAD, STEPS
    )
    R.assert_close(ours, paper, 1e-10)


def test_masks_and_rescales_per_leaf_and_keeps_the_inner_state():
    inner = gradtx.sgd(1.0)
    tx = gradtx.cautious(inner)
    p = {"a": jnp.zeros(4), "s": jnp.zeros(()), "e": jnp.zeros((0, 3))}
    g = {"a": jnp.array([1.0, -2.0, 0.0, 3.0]), "s": jnp.array(2.0), "e": p["e"]}
    state = tx.init(p)
    assert jax.tree.structure(state) == jax.tree.structure(inner.init(p))
    u, _ = jax.jit(tx.update)(g, state, p)
    # 3 of 4 agree (0 is not agreement): scale 4 / (3 + 1) = 1
    np.testing.assert_array_equal(u["a"], [-1.0, 2.0, 0.0, -3.0])
    np.testing.assert_array_equal(u["s"], -1.0)  # 1 / (1 + 1) · (−2)
    assert u["e"].shape == (0, 3)


def test_bfloat16_params_and_eval_shape():
    tx = gradtx.cautious(gradtx.adamw(0.1))
    p = {"w": jnp.ones((3, 4), jnp.bfloat16)}
    shapes = jax.eval_shape(tx.init, p)
    assert jax.tree.structure(shapes) == jax.tree.structure(tx.init(p))
    u, _ = tx.update({"w": jnp.full((3, 4), 0.5, jnp.bfloat16)}, tx.init(p), p)
    assert u["w"].dtype == jnp.bfloat16
    assert bool(jnp.all(jnp.isfinite(u["w"].astype(jnp.float32))))


def test_not_elementwise():
    tx = gradtx.cautious(gradtx.adam(0.1))
    with pytest.raises(Exception, match="cautious"):
        gradtx.packed(tx)


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        (dict(inner=lambda g: g), TypeError, "inner"),
        (dict(inner=gradtx.adam(0.1), descent=1), TypeError, "descent"),
    ],
)
def test_bad_inputs(kwargs, error, name):
    with pytest.raises(error, match=f"cautious: `{name}`"):
        gradtx.cautious(**kwargs)


def test_complex_leaf_is_rejected_by_path():
    tx = gradtx.cautious(gradtx.sgd(0.1))
    p = {"z": jnp.ones(2, jnp.complex64)}
    with pytest.raises(TypeError, match=r"cautious: complex leaf \['z'\]"):
        tx.update(p, tx.init(p), p)
