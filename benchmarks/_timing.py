"""Round-robin timing, medians and ratios taken round by round.

A *participant* is any object with a ``name`` and a ``run(n)`` method that
performs ``n`` optimizer steps and returns only once their results are ready
(JAX participants call :func:`jax.block_until_ready`; torch is synchronous on
CPU). Participants are timed in a fixed order, ``A B C A B C ...``, so that a
slow phase of a shared machine hits every library in the same round; ratios
are then taken within each round and only then summarised, which cancels most
of the drift that a ratio of two medians would keep.
"""

from __future__ import annotations

import math
import statistics
import time
import traceback
from collections.abc import Sequence
from typing import Any, Protocol


class Participant(Protocol):
    """One column of a benchmark: a library running one optimizer."""

    name: str

    def run(self, n: int) -> None:
        """Performs ``n`` steps and waits for their results."""


def seconds_per_step(participant: Participant, n: int) -> float:
    """Wall-clock seconds per step of ``n`` back-to-back steps."""
    start = time.perf_counter()
    participant.run(n)
    return (time.perf_counter() - start) / n


class TooSlow(Exception):
    """A warm-up step took longer than the run allows a step to take."""

    def __init__(self, seconds: float, limit: float):
        super().__init__(f"{seconds:.2f} s per step at warm-up (limit {limit:g} s)")
        self.seconds = seconds
        self.limit = limit


def calibrate(
    participant: Participant,
    target_s: float,
    max_step_s: float = math.inf,
    max_iters: int = 10_000,
) -> int:
    """Number of steps whose batch lasts about ``target_s`` seconds.

    Runs warm-up steps first (the first calls of a step pay for page faults on
    fresh buffers, torch allocates its state lazily), so call it once before
    timing. Raises :class:`TooSlow` as soon as one step exceeds ``max_step_s``,
    which keeps a pathological column from eating the run's time budget.
    """
    for _ in range(2):
        per_step = seconds_per_step(participant, 1)
        if per_step > max_step_s:
            raise TooSlow(per_step, max_step_s)
    if per_step >= target_s:
        return 1
    guess = max(1, min(max_iters, math.ceil(target_s / per_step / 4)))
    per_step = seconds_per_step(participant, guess)
    return max(1, min(max_iters, round(target_s / max(per_step, 1e-9))))


def round_robin(
    participants: Sequence[Participant],
    rounds: int,
    iters: dict[str, int],
    max_step_s: float = math.inf,
) -> tuple[dict[str, list[float]], dict[str, str], dict[str, str]]:
    """Times every participant once per round, in order, for ``rounds`` rounds.

    Returns the seconds per step of each round by name; the error of any
    participant that raised (it is dropped from the remaining rounds, its
    earlier samples are discarded); and a note for any participant stopped
    because a step took longer than ``max_step_s`` (it keeps the samples of
    the rounds it ran, that one included).
    """
    samples: dict[str, list[float]] = {p.name: [] for p in participants}
    failed: dict[str, str] = {}
    stopped: dict[str, str] = {}
    for round_ in range(rounds):
        for participant in participants:
            if participant.name in failed or participant.name in stopped:
                continue
            try:
                per_step = seconds_per_step(participant, iters[participant.name])
            except Exception as error:  # reported, never fatal to the run
                failed[participant.name] = describe_error(error)
                samples[participant.name] = []
                continue
            samples[participant.name].append(per_step)
            if per_step > max_step_s and round_ + 1 < rounds:
                stopped[participant.name] = (
                    f"stopped after {round_ + 1} of {rounds} rounds: "
                    f"{per_step:.2f} s per step (limit {max_step_s:g} s)"
                )
    return samples, failed, stopped


def describe_error(error: BaseException) -> str:
    """One line naming an exception and where it came from."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first_line}{where}"


def summarize(values: Sequence[float]) -> dict[str, float] | None:
    """Median, minimum and maximum, or ``None`` for no values."""
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def ratios_by_round(
    numerator: Sequence[float], denominator: Sequence[float]
) -> dict[str, float] | None:
    """Summary of ``numerator[r] / denominator[r]`` over the rounds both ran."""
    pairs = [(a, b) for a, b in zip(numerator, denominator, strict=False) if b > 0]
    if not pairs:
        return None
    return summarize([a / b for a, b in pairs])


def time_rows(
    rows: list[dict[str, Any]],
    participants: Sequence[Any],
    rounds: int,
    target_batch_s: float,
) -> None:
    """Times ``participants`` round-robin and fills the ``"ok"`` rows (each
    named by its ``"option"``, as its participant) with ``time`` and the
    per-round ``ratio`` to the first row."""
    iters = {p.name: calibrate(p, target_batch_s) for p in participants}
    samples, failed, _ = round_robin(participants, rounds, iters)
    reference = samples.get(rows[0]["option"], [])
    for row in rows:
        if row["status"] != "ok":
            continue
        if row["option"] in failed:
            row["status"] = failed[row["option"]]
            continue
        times = samples[row["option"]]
        row["time"] = summarize(times)
        row["ratio"] = ratios_by_round(times, reference)
