"""Every alias reports a bad argument under its own name (issue 17, item 2).

For every alias gradtx exports and every numeric argument with a default, a
bad value (NaN for a float, -1 for an integer) is either accepted (an
argument without a range) or raises an error whose message starts with the
alias's name and quotes the argument as the user wrote it, never a primitive's
name or argument (``sgd(momentum=1.5)`` used to say ``trace: `decay` …``).
"""

import inspect
import math
import warnings

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
