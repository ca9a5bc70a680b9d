"""Runs the example scripts end to end with small settings."""

import pathlib
import re
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run_example(name, *args):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_quickstart():
    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    out = run_example("quickstart.py", "--epochs", "2")
    assert re.search(r"^final train loss [\d.]+  accuracy [\d.]+$", out, re.M), out
    test_line = re.search(r"^final test  loss ([\d.]+)  accuracy ([\d.]+)$", out, re.M)
    assert test_line, out
    assert float(test_line.group(2)) > 0.8


def test_classic_optimizers():
    out = run_example("classic_optimizers.py", "--epochs", "2")
    for rule in [
        "batch GD",
        "SGD (batch 1)",
        "mini-batch SGD",
        "momentum, EMA form",
        "heavy ball, sgd(momentum)",
        "heavy ball, trace + scale",
        "Nesterov",
        "Adagrad",
        "RMSProp, ε in root",
        "RMSProp, ε outside root",
        "Adam",
        "Adam + coupled L2",
        "AdamW",
        "SGD (batch 1) + clipping",
    ]:
        row = re.search(rf"^{re.escape(rule)} +\d+ +\d+ +([\d.]+) +([\d.]+)", out, re.M)
        assert row, f"no row for {rule!r} in\n{out}"
        loss, accuracy = map(float, row.groups())
        assert loss < 0.7 and accuracy > 0.5, row.group(0)


def test_bf16_training(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    png = tmp_path / "bf16.png"
    out = run_example("bf16_training.py", "--steps", "200", "--out", str(png))
    losses = {
        n: float(v)
        for n, v in re.findall(r"^(.+?) +final train loss ([\d.]+)", out, re.M)
    }
    f32 = losses["float32"]
    assert losses["bf16"] > f32 + 1.0, out  # plain bf16 stalls
    for name in ("bf16 + Kahan", "bf16 + stochastic rounding"):
        assert abs(losses[name] - f32) < 0.05 * f32, out
    assert png.stat().st_size > 10_000


def test_data_parallel():
    """8 simulated devices; ZeRO-1 holds ~1/8 of the state with the numbers of
    the replicated run."""
    pytest.importorskip("sklearn")
    out = run_example("data_parallel.py", "--epochs", "2")
    assert out.startswith("8 cpu devices"), out
    share = re.search(
        r"^zero1 holds 1/([\d.]+) of the state on each device$", out, re.M
    )
    assert share and 7.5 < float(share.group(1)) <= 8.0, out
    rows = dict(
        re.findall(r"^  (zero1|replicated) +[\d.]+ KiB +([\d.]+) KiB$", out, re.M)
    )
    assert float(rows["replicated"]) / float(rows["zero1"]) > 7.5, out
    diff = re.search(
        r"^max \|params\(zero1\) - params\(replicated\)\| = (\S+)$", out, re.M
    )
    assert diff and float(diff.group(1)) < 1e-5, out
    accuracy = re.findall(
        r"^final test loss \[(\w+)\] [\d.]+  accuracy ([\d.]+)$", out, re.M
    )
    assert {how for how, _ in accuracy} == {"zero1", "replicated"}, out
    assert all(float(a) > 0.6 for _, a in accuracy), out
