"""The printed tables: one per timed case, one for the compile-time sweep.

Everything printed is read from the result dictionary that is also written as
JSON, so the tables and the file cannot disagree.
"""

from __future__ import annotations

from typing import Any

from ._guards import format_guards
from ._precision import format_precision

DASH = "–"


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


def _span(summary: dict[str, float] | None, fmt) -> tuple[str, str]:
    if summary is None:
        return DASH, DASH
    return fmt(summary["median"]), f"{fmt(summary['min'])}{DASH}{fmt(summary['max'])}"


def _ratio(value: float) -> str:
    return f"{value:.2f}"


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


def _row(cells: list[str], widths: list[int]) -> str:
    first, *rest = cells
    return "  ".join(
        [
            first.ljust(widths[0]),
            *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)),
        ]
    )


CASE_HEADER = [
    "optimizer", "library", "median ms", "min–max ms", "×optax", "min–max",
    "bound", "state B/p", "peak MB", "compile s (t+l+c)",
]  # fmt: skip


def format_case(case: dict[str, Any]) -> str:
    """The table of one timed case."""
    lines = [
        f"== {case['name']}: {case['description']} "
        f"({case['n_leaves']:,} {'leaf' if case['n_leaves'] == 1 else 'leaves'}, "
        f"{case['n_params']:,} params, "
        f"{case['rounds']} rounds) =="
    ]
    probe = case["probe"]
    gbps = probe.get("gbps")
    if gbps:
        lines.append(
            f"probe: {gbps['median']:.1f} GB/s "
            f"({gbps['min']:.1f}{DASH}{gbps['max']:.1f}) "
            f"streaming {probe['n_elements']:,} floats; "
            "bound = the recipe's bytes/param at that speed"
        )
    rows = [CASE_HEADER]
    for entry in case["results"]:
        median, span = _span(entry.get("time_s"), _ms)
        ratio, ratio_span = _span(entry.get("ratio_to_optax"), _ratio)
        bound = entry.get("bound_fraction")
        state = entry.get("state_bytes_per_param")
        memory = entry.get("memory") or {}
        compile_ = entry.get("compile")
        cells = [
            entry["optimizer"],
            entry["library"],
            median,
            span,
            ratio,
            ratio_span,
            _percent(bound["median"]) if bound else DASH,
            f"{state:.2f}" if state is not None else DASH,
            f"{memory['peak_bytes'] / 1e6:.1f}" if "peak_bytes" in memory else DASH,
            "+".join(f"{compile_[k]:.2f}" for k in ("trace_s", "lower_s", "compile_s"))
            if compile_
            else DASH,
        ]
        if entry["status"] != "ok":
            cells[2:] = [entry["status"]] + [""] * (len(cells) - 3)
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(CASE_HEADER))]
    lines += [_row(row, widths) for row in rows]
    for entry in case["results"]:
        if entry.get("note"):
            lines.append(
                f"  note {entry['optimizer']}/{entry['library']}: {entry['note']}"
            )
    clip = case.get("clip_over_plain") or {}
    if clip:
        parts = [
            f"{library} {s['median']:.2f}x ({s['min']:.2f}{DASH}{s['max']:.2f})"
            for library, s in clip.items()
        ]
        lines.append("clip_adamw / adamw, same library, per round: " + "; ".join(parts))
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}"


def format_sweep(sweep: dict[str, Any]) -> str:
    """The compile-time table: one row per (number of leaves, library)."""
    lines = [
        f"== compile time: {sweep['label']}; leaves of shape "
        f"{tuple(sweep['leaf_shape'])}; {sweep['isolation']} per point, "
        f"cap {sweep['cap_s']:g} s =="
    ]
    header = ["leaves", "library", "trace s", "lower s", "compile s", "total s",
              f"×{sweep['reference']}"]  # fmt: skip
    rows = [header]
    for point in sweep["points"]:
        total = _seconds(point["total_s"])
        if point["status"] == "over_cap":
            total = f">{sweep['cap_s']:g}"
        elif point["status"] != "ok":
            total = point["status"]
        ratio = point.get("ratio_to_reference")
        shown = DASH
        if ratio:
            prefix = "" if ratio["kind"] == "=" else ratio["kind"]
            shown = f"{prefix}{ratio['value']:.2f}"
        rows.append(
            [
                str(point["leaves"]),
                point["library"],
                _seconds(point["trace_s"]),
                _seconds(point["lower_s"]),
                _seconds(point["compile_s"]),
                total,
                shown,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines += [_row(row, widths) for row in rows]
    for point in sweep["points"]:
        if point["status"] not in ("ok", "over_cap") and point.get("note"):
            lines.append(
                f"  note {point['leaves']}/{point['library']}: {point['note']}"
            )
    return "\n".join(lines)


def format_meta(meta: dict[str, Any], notes: list[str]) -> str:
    """Versions, machine, load and wall time; then the run's notes."""
    torch = meta.get("torch")
    torch_text = (
        f"torch {torch['version']} ({torch['threads']} threads, "
        f"default {torch['default_threads']})"
        if torch
        else "no torch"
    )
    load = meta.get("load_average", {})
    lines = [
        f"mode {meta['mode']}; jax {meta['jax']}, optax {meta.get('optax') or DASH}, "
        f"gradtx {meta.get('gradtx') or DASH}, {torch_text}; "
        f"{meta['cpus']} CPUs; {meta['wall_s']:.0f} s wall",
        "load average (1/5/15 min) at start "
        + " ".join(f"{x:.2f}" for x in load.get("start", []))
        + ", at end "
        + " ".join(f"{x:.2f}" for x in load.get("end", [])),
    ]
    lines += [f"note: {note}" for note in notes]
    return "\n".join(lines)


def format_report(results: dict[str, Any]) -> str:
    """All tables of a run, separated by blank lines."""
    parts = [format_case(case) for case in results["cases"]]
    if results.get("compile_sweep"):
        parts.append(format_sweep(results["compile_sweep"]))
    if results.get("precision"):
        parts.append(format_precision(results["precision"]))
    if results.get("guards"):
        parts.append(format_guards(results["guards"]))
    parts.append(format_meta(results["meta"], results.get("notes", [])))
    return "\n\n".join(parts)
