"""The public API is documented: every name, and every optimizer in full."""

from __future__ import annotations

import inspect

import pytest
from optimizers import ALIASES

import gradtx

# Type aliases (plain typing objects) cannot carry their own docstring.
TYPE_ALIASES = {
    "Params",
    "Updates",
    "OptState",
    "Schedule",
    "ScalarOrSchedule",
    "MaskOrFn",
}


@pytest.mark.parametrize("name", sorted(set(gradtx.__all__) - TYPE_ALIASES))
def test_every_public_name_has_a_docstring(name):
    obj = getattr(gradtx, name)
    doc = inspect.getdoc(obj) or ""
    assert len(doc) > 20, f"gradtx.{name} needs a docstring"


def test_all_is_complete_and_sorted():
    public = {n for n in dir(gradtx) if not n.startswith("_")}
    modules = {"alias", "alias_variants", "combine", "schedules", "transforms"}
    modules |= {"contrib"}  # loaded on first use (after a test imported it)
    modules |= {n for n in public if n.startswith("alias_")}
    assert set(gradtx.__all__) == public - modules
    assert gradtx.__all__ == sorted(gradtx.__all__)


@pytest.mark.parametrize("name", ALIASES)
def test_optimizer_docstrings_have_maths_example_and_reference(name):
    doc = inspect.getdoc(getattr(gradtx, name))
    assert ".. math::" in doc, name
    assert ">>>" in doc, name
    assert any(w in doc for w in ("Reference", "References")), name
