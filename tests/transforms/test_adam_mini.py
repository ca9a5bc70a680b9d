"""Adam-mini: NumPy float64 reference from the paper, and step for step against
the official ``adam_mini.Adam_mini`` 1.1.1 (torch float64) with named
parameters mapped to a dict of the same names, 30 steps, 1e-6 absolute."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_modifiers as R
from public_references import adam_mini as adam_mini_module

import gradtx
from gradtx.transforms.adam_mini import dotted_paths

# dim = 4, n_heads = 2 (a head: 4·4/2 = 8 elements), one key/value head (GQA)
LEAVES = [
    ("embed.weight", (6, 4), "row", True),
    ("layers.0.q_proj.weight", (4, 4), 8, True),
    ("layers.0.k_proj.weight", (2, 4), 8, True),
    ("layers.0.v_proj.weight", (2, 4), "row", True),
    ("layers.0.mlp.weight", (3, 4), "row", True),
    ("layers.0.mlp.bias", (3,), "adam", False),
    ("layers.0.norm.weight", (4,), "tensor", False),
    ("lm_head.weight", (6, 4), "row", True),
    ("other.weight", (2, 3, 4), "tensor", True),
    ("gain", (), "tensor", True),
]
NAMES = [n for n, *_ in LEAVES]
SHAPES = [s for _, s, *_ in LEAVES]
STEPS = 30
GRAD = R.make_grad_fn(SHAPES, STEPS, seed=9)
P0 = R.start(SHAPES)
KW = dict(dim=4, n_heads=2)


def test_matches_numpy_reference_and_official_adam_mini_step_for_step():
    wd = 0.1  # decayed and not-decayed leaves (norm, bias)
    tx = gradtx.adam_mini(0.02, weight_decay=wd, **KW)
    ours = R.run_gradtx(tx, P0, GRAD, STEPS, NAMES)
    blocks, decay = [b for *_, b, _ in LEAVES], [d for *_, d in LEAVES]
    ref = R.AdamMini(0.02, blocks, decay, wd=wd)
    R.assert_close(ours, R.run_numpy(ref, P0, GRAD, STEPS), 1e-10)
    module = adam_mini_module()
    make = lambda named: module.Adam_mini(
        named, lr=0.02, weight_decay=wd, n_kv_heads=1, verbose=False, **KW
    )
    R.assert_close(ours, R.run_torch(make, P0, GRAD, STEPS, NAMES), 1e-6)


def test_nested_paths_are_dotted_and_flax_kernels_use_axis_1():
    tree = {"layers": [{"q_proj": {"kernel": jnp.zeros((2, 2))}}]}
    assert dotted_paths(tree) == ["layers.0.q_proj.kernel"]
    # a Flax (in, out) output kernel: one v per output column with axis 1
    opt = gradtx.adam_mini(0.1, neuron_axis=1)
    p = {"lm_head": {"kernel": jnp.zeros((3, 2))}}
    g = {"lm_head": {"kernel": jnp.array([[1.0, 4.0], [1.0, 4.0], [1.0, 4.0]])}}
    s = opt.init(p)
    assert s[0].nu["lm_head"]["kernel"].shape == (2,)
    u, _ = opt.update(g, s, p)
    np.testing.assert_allclose(u["lm_head"]["kernel"], -0.1, rtol=1e-5)


def test_state_is_small_stable_and_eval_shape_works():
    opt = gradtx.adam_mini(0.1, weight_decay=0.1)
    p = {"w": jnp.ones((8, 8), jnp.bfloat16), "e": jnp.zeros((0, 3)), "s": jnp.ones(())}
    s0 = opt.init(p)
    assert s0[0].nu["w"].shape == () and s0[0].nu["w"].dtype == jnp.float32
    g = jax.tree.map(lambda x: jnp.full_like(x, 0.5), p)
    u, s1 = jax.jit(opt.update)(g, s0, p)
    sig = lambda t: [(x.shape, x.dtype) for x in jax.tree.leaves(t)]
    assert sig(s0) == sig(s1) == sig(jax.eval_shape(opt.init, p))
    assert u["w"].dtype == jnp.bfloat16 and u["e"].shape == (0, 3)


def test_a_head_leaf_of_the_wrong_size_is_named():
    opt = gradtx.adam_mini(0.1, dim=4, n_heads=2)
    p = {"attn": {"q_proj": jnp.zeros((3, 3))}}
    with pytest.raises(ValueError, match=r"adam_mini: leaf \['attn'\]\['q_proj'\]"):
        opt.init(p)


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        (dict(learning_rate=-1.0), ValueError, "learning_rate"),
        (dict(b1=1.0), ValueError, "b1"),
        (dict(b2=-0.5), ValueError, "b2"),
        (dict(eps=-1.0), ValueError, "eps"),
        (dict(weight_decay=-1.0), ValueError, "weight_decay"),
        (dict(dim=0), ValueError, "dim"),
        (dict(n_heads=1.5), TypeError, "n_heads"),
        (dict(dim=3, n_heads=2), ValueError, "n_heads"),
        (dict(neuron_axis="x"), TypeError, "neuron_axis"),
        (dict(head_patterns="q_proj"), TypeError, "head_patterns"),
        (dict(no_decay_patterns=[1]), TypeError, "no_decay_patterns"),
        (dict(mu_dtype=jnp.int8), ValueError, "mu_dtype"),
    ],
)
def test_bad_inputs_name_the_argument(kwargs, error, name):
    with pytest.raises(error, match=f"adam_mini: `{name}`"):
        gradtx.adam_mini(**kwargs)


def test_complex_leaf_is_rejected_by_path():
    opt = gradtx.adam_mini(0.1)
    p = {"z": jnp.ones(2, jnp.complex64)}
    with pytest.raises(
        TypeError, match=r"adam_mini: complex leaf \['z'\].*`scale_by_adam_mini`"
    ):
        opt.update(p, opt.init(p), p)
