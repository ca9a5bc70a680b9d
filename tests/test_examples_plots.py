"""Runs the plotting examples with tiny settings and checks what they claim."""

import inspect
import pathlib
import re

import pytest
from test_examples import run_example

import gradtx

pytest.importorskip("matplotlib")

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
SCHEDULE_PACKAGE = "gradtx.schedules."
TOUR_OPTIMIZERS = [
    "GD",
    "momentum, EMA form",
    "heavy ball",
    "Nesterov",
    "Adagrad",
    "RMSProp",
    "Adam",
    "AdamW",
]


def assert_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    assert path.stat().st_size > 10_000, (path, path.stat().st_size)


def test_optimizer_tour(tmp_path):
    out = run_example("optimizer_tour.py", "--steps", "60", "--out", str(tmp_path))
    assert_png(tmp_path / "optimizer_tour_trajectories.png")
    assert_png(tmp_path / "optimizer_tour_loss.png")
    sections = re.split(r"^(?=\S.*: 60 steps from)", out, flags=re.M)[1:]
    assert [s.split(":")[0] for s in sections] == [
        "ill-conditioned quadratic",
        "Rosenbrock",
    ], out
    for section in sections:
        for name in TOUR_OPTIMIZERS:
            row = re.search(rf"^  {re.escape(name)} +(\S+) +(\S+)$", section, re.M)
            assert row, f"no row for {name!r} in\n{section}"
            initial, final = map(float, row.groups())
            assert final < 0.5 * initial, row.group(0)  # nan fails too


def test_batch_vs_minibatch(tmp_path):
    out = run_example("batch_vs_minibatch.py", "--epochs", "3", "--out", str(tmp_path))
    assert_png(tmp_path / "batch_vs_minibatch.png")
    losses = {
        name: float(loss)
        for name, loss in re.findall(
            r"^(.+?) +\d+ +[\d.e-]+ +([\d.]+) +[\d.]+s$", out, re.M
        )
    }
    assert set(losses) == {"full-batch GD", "SGD (batch 1)", "mini-batch (32)"}, out
    assert all(loss < 0.69 for loss in losses.values()), out  # below log 2
    # More updates per epoch: lower loss after the same number of epochs.
    assert losses["mini-batch (32)"] < losses["full-batch GD"] - 0.03, out
    assert losses["SGD (batch 1)"] < losses["full-batch GD"] - 0.03, out


def exported_schedules():
    """Every schedule factory in gradtx.__all__, found independently of the
    example, so that a new schedule without a panel fails the test."""
    names = {
        name
        for name in gradtx.__all__
        if inspect.isfunction(getattr(gradtx, name))
        and getattr(gradtx, name).__module__.startswith(SCHEDULE_PACKAGE)
    }
    names |= {
        name
        for name in gradtx.__all__
        if name.endswith(("_schedule", "_schedules")) and name != "scale_by_schedule"
    }
    return names


def test_schedules_gallery(tmp_path):
    expected = exported_schedules()
    assert len(expected) >= 14 and "exponential_decay" in expected
    out = run_example("schedules.py", "--steps", "40", "--out", str(tmp_path))
    assert_png(tmp_path / "schedules.png")
    panels = re.findall(r"^panel (\w+): gtx\.(\w+)\(", out, re.M)
    assert all(a == b for a, b in panels), out  # the title is the call made
    missing = expected - {name for name, _ in panels}
    assert not missing, f"schedules without a panel: {sorted(missing)}"


def test_preconditioned(tmp_path):
    """Each matrix optimizer trains the digits MLP (short run): a finite
    training loss well below the start's ln 10, and the two-panel plot."""
    pytest.importorskip("sklearn")
    out = run_example("preconditioned.py", "--steps", "80", "--out", str(tmp_path))
    assert_png(tmp_path / "preconditioned_loss.png")
    rows = re.findall(r"^(\S+) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+)$", out, re.M)
    names = [name for name, *_ in rows]
    assert names == ["AdamW", "Muon", "SOAP", "Shampoo", "PSGD-Kron"], out
    for name, loss, accuracy, ms, compile_s in rows:
        assert float(loss) < 1.0 and float(accuracy) > 0.6, (name, out)
        assert float(ms) > 0 and float(compile_s) > 0, (name, out)
