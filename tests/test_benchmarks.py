"""The benchmark harness runs end to end on tiny sizes and writes sound JSON.

No speed is asserted here: speed is what ``python -m benchmarks.run`` measures.
"""

import json
import math
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest.importorskip("optax")

from benchmarks import _cases, _compile_sweep, _engines, _report, run  # noqa: E402


def positive_finite(value):
    return isinstance(value, float) and math.isfinite(value) and value > 0


def positive_summary(summary):
    return (
        summary is not None
        and all(positive_finite(summary[key]) for key in ("median", "min", "max"))
        and summary["min"] <= summary["median"] <= summary["max"]
    )


@pytest.fixture(scope="module")
def results():
    out = run.run_benchmarks(_cases.tiny_config(), engine_specs=("gradtx", "optax"))
    return json.loads(json.dumps(out))  # what the JSON file holds


def test_every_case_and_column_is_reported(results):
    assert [case["name"] for case in results["cases"]] == [
        "large",
        "transformer",
        "many",
    ]
    for case in results["cases"]:
        assert case["n_params"] > 0 and case["n_leaves"] > 0
        assert positive_summary(case["probe"]["gbps"])
        columns = {(e["optimizer"], e["library"]) for e in case["results"]}
        assert ("adamw", "optax") in columns and ("adamw", "gradtx") in columns


def test_times_ratios_and_fractions_are_positive_finite(results):
    for case in results["cases"]:
        for entry in case["results"]:
            assert entry["status"] == "ok", entry
            assert len(entry["samples_s"]) == case["rounds"]
            assert positive_summary(entry["time_s"])
            assert positive_summary(entry["ratio_to_optax"])
            assert positive_summary(entry["bound_fraction"])
            if entry["library"] == "optax":
                assert entry["ratio_to_optax"]["median"] == 1.0


def test_state_and_memory_are_reported(results):
    large = results["cases"][0]
    for entry in large["results"]:
        assert entry["state_bytes_per_param"] == pytest.approx(8.0, abs=0.01)
        memory = entry["memory"]
        if memory is not None:
            assert memory["peak_bytes"] > 0
        assert set(entry["compile"]) == {"trace_s", "lower_s", "compile_s"}
    assert positive_summary(large["clip_over_plain"]["gradtx"])


def test_compile_sweep_points(results):
    sweep = results["compile_sweep"]
    points = {(p["leaves"], p["library"]): p for p in sweep["points"]}
    assert set(points) == {(2, "optax"), (2, "gradtx")}
    for point in points.values():
        assert point["status"] == "ok", point
        assert positive_finite(point["total_s"])
        assert point["ratio_to_reference"]["kind"] == "="
        assert positive_finite(point["ratio_to_reference"]["value"])


def test_report_prints_every_section(results):
    text = _report.format_report(results)
    for heading in ("== large", "== transformer", "== many", "== compile time"):
        assert heading in text


def test_unknown_engines_are_skipped_or_rejected():
    engines, notes = _engines.resolve(["optax", "no_such_module:factory"])
    assert [engine.name for engine in engines] == ["optax"]
    assert len(notes) == 1 and "no_such_module" in notes[0]
    with pytest.raises(ValueError, match="unknown engine"):
        _engines.resolve(["no-such-engine"])


def test_a_compile_point_past_its_cap_is_stopped():
    script = 'import time; print(\'{"event": "ready"}\', flush=True); time.sleep(30)'
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    )
    events, ended = _compile_sweep._follow(child, cap_s=0.2)
    child.wait()
    assert events == [{"event": "ready"}] and not ended


def test_command_line_rejects_unknown_sections():
    with pytest.raises(SystemExit):
        run.main(["--only", "large,nonsense"])


def test_precision_rows_report_state_bytes_and_ratios(results):
    rows = {row["option"]: row for row in results["precision"]["rows"]}
    full = rows["adamw, float32 state"]
    assert full["status"] == "ok"
    assert abs(full["state_bytes_per_param"] - 8.0) < 0.01  # + the step count
    assert abs(rows["adamw, bfloat16 moments"]["state_bytes_per_param"] - 4.0) < 0.01
    for row in rows.values():
        assert row["status"] == "ok" or row["status"].startswith("skipped"), row
        if row["status"] == "ok":
            assert positive_summary(row["time"]) and positive_summary(row["ratio"])


def test_preconditioned_state_bytes_are_the_documented_ones():
    """docs/preconditioned.md's state column is what ``init`` allocates."""
    import re

    from benchmarks import preconditioned

    measured = preconditioned.state_bytes_per_param()
    text = (ROOT / "docs" / "preconditioned.md").read_text()
    documented = {}
    for alias, cell in re.findall(
        r"^\| `(\w+)(?:\(tx\))?` \|[^|]*\|[^|]*\| ([^|]*) \|", text, re.M
    ):
        numbers = re.findall(r"([\d.]+) \((\w+) graft\)", cell)
        if numbers:
            for value, graft in numbers:
                documented[f"{alias} (block 128, {graft} graft)"] = float(value)
        elif alias == "cautious":
            documented["cautious(adamw)"] = measured["adamw"]
        else:
            documented[alias] = float(cell)
    assert documented.keys() == measured.keys()
    for name, value in measured.items():
        assert value == pytest.approx(documented[name], abs=0.005), name
