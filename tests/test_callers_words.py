"""Every alias reports a bad argument under its own name (issue 17, item 2),
and an error of a part it chains under its own name too (issue 18).

For every alias gradtx exports and every numeric argument with a default, a
bad value (NaN for a float, -1 for an integer) is either accepted (an
argument without a range) or raises an error whose message starts with the
alias's name and quotes the argument as the user wrote it, never a primitive's
name or argument (``sgd(momentum=1.5)`` used to say ``trace: `decay` …``).
An error that ``init`` or ``update`` raises (a tree that does not match, no
``params``) starts with the alias too and names the part that raised it.
"""

import inspect
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

ALIASES = sorted(
    name
    for name in gradtx.__all__
    if inspect.isfunction(getattr(gradtx, name))
    and getattr(gradtx, name).__module__.startswith("gradtx.optimizers.")
)
# Values for the arguments without a default.
REQUIRED = {"learning_rate": 0.1, "block_size": 4}
# Arguments that default to None (off) and take a decay in [0, 1] when set.
OPTIONAL_DECAYS = {"momentum", "b1", "beta", "decay"}


def _cases():
    for alias in ALIASES:
        for p in inspect.signature(getattr(gradtx, alias)).parameters.values():
            d = p.default
            if d is None and p.name in OPTIONAL_DECAYS:
                yield alias, p.name, 1.5
            if isinstance(d, bool) or not isinstance(d, (int, float)):
                continue
            yield alias, p.name, math.nan if isinstance(d, float) else -1


CASES = list(_cases())


def test_every_alias_is_checked():
    assert len(ALIASES) >= 45 and len(CASES) >= 200


@pytest.mark.parametrize(
    "alias,argument,bad", CASES, ids=[f"{a}-{n}" for a, n, _ in CASES]
)
def test_a_bad_value_is_reported_in_the_callers_words(alias, argument, bad):
    factory = getattr(gradtx, alias)
    params = inspect.signature(factory).parameters
    required = {k: v for k, v in REQUIRED.items() if k in params and k != argument}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            factory(**required, **{argument: bad})
        except (ValueError, TypeError) as error:
            message = str(error)
            assert message.startswith(f"{alias}:"), message
            assert f"`{argument}`" in message, message


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: gradtx.sgd(0.1, momentum=1.5), "sgd: `momentum` must be in [0, 1]"),
        (lambda: gradtx.rmsprop(0.1, momentum=1.5), "rmsprop: `momentum`"),
        (lambda: gradtx.rmsprop(0.1, decay=1.5), "rmsprop: `decay`"),
        (lambda: gradtx.sm3(0.1, momentum=1.5), "sm3: `momentum`"),
        (lambda: gradtx.adamw(0.1, b2=1.5), "adamw: `b2` must be in [0, 1)"),
        (lambda: gradtx.nadamw(0.1, weight_decay=-1.0), "nadamw: `weight_decay`"),
    ],
)
def test_named_cases(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value).startswith(message), str(info.value)


# ------------------------------------------------ errors at init and update

RUN_TIME_ALIASES = sorted(set(ALIASES) | {"adam_8bit", "adamw_8bit", "sgd_8bit"})
PARAMS = {"w": jax.ShapeDtypeStruct((4, 4), jnp.float32)}
NO_STATE_PER_LEAF = {"noisy_sgd", "polyak_sgd", "sgd", "sign_sgd"}


@pytest.mark.parametrize("alias", RUN_TIME_ALIASES)
def test_an_update_error_names_the_alias_and_the_part(alias):
    # Gradients for another tree: the part that checks them raises, and the
    # message starts with the alias the user called (traced only: no compile).
    factory = getattr(gradtx, alias)
    params = inspect.signature(factory).parameters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecations, noisy_sgd's default key
        tx = factory(**{k: v for k, v in REQUIRED.items() if k in params})
    state = jax.eval_shape(tx.init, PARAMS)
    grads = {"v": PARAMS["w"]}
    if alias in NO_STATE_PER_LEAF:  # nothing to compare the grads with: the
        grads, state = PARAMS, state[:-1]  # state of a shorter chain instead
    with pytest.raises((ValueError, TypeError)) as info:
        jax.eval_shape(
            lambda g, s, p: tx.update(g, s, p, value=jnp.float32(1.0)),
            grads,
            state,
            PARAMS,
        )
    message = str(info.value)
    assert message.startswith(f"{alias}: "), message


def test_adamw_without_params_names_adamw_and_its_weight_decay():
    params = {"w": jnp.ones(3)}
    tx = gradtx.adamw(0.1)
    with pytest.raises(ValueError) as info:
        tx.update(params, tx.init(params))
    assert str(info.value) == (
        "adamw: `update` needs the current parameters; call "
        "`update(updates, state, params)` with `params` (raised by its part "
        "`add_decayed_weights`)."
    )


def test_adamw_without_weight_decay_needs_no_params():
    params = {"w": jnp.array([1.0, -2.0])}
    plain, no_decay = gradtx.adam(0.1), gradtx.adamw(0.1, weight_decay=0.0)
    want, _ = plain.update(params, plain.init(params))
    got, _ = no_decay.update(params, no_decay.init(params))  # no params
    np.testing.assert_array_equal(got["w"], want["w"])
