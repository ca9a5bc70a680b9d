"""Packaging: one version, and the files a wheel and an sdist must carry."""

from __future__ import annotations

import importlib.metadata
import pathlib
import re

import gradtx

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_version_lives_in_one_place():
    pyproject = (ROOT / "pyproject.toml").read_text()
    project = pyproject.split("[project]")[1].split("\n[")[0]  # the table
    assert 'dynamic = ["version"]' in project
    assert not re.search(r"^version\s*=", project, re.M)
    assert 'version = { attr = "gradtx.__version__" }' in pyproject
    assert importlib.metadata.version("gradtx") == gradtx.__version__
    assert gradtx.__version__ in (ROOT / "CHANGELOG.md").read_text() or (
        "## Unreleased" in (ROOT / "CHANGELOG.md").read_text()
    )


def test_kernel_source_ships_with_the_package():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"native_adam.cc"' in pyproject  # package data: into the wheel
    manifest = (ROOT / "MANIFEST.in").read_text()
    assert "gradtx/engines/native_adam.cc" in manifest  # and the sdist
    for folder in ("tests", "examples", "benchmarks", "docs"):
        assert f"recursive-include {folder} " in manifest
