"""The benchmark registry and the result record written to bench/results/latest.json."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Options:
    """Knobs every benchmark receives (from the command line)."""

    rounds: int | None = None
    quick: bool = False

    def rounds_or(self, default: int) -> int:
        """The rounds to run: the command line's, else the benchmark's default."""
        return self.rounds if self.rounds is not None else default


@dataclass(frozen=True)
class Result:
    """One reported figure, always next to a baseline measured in the same run."""

    name: str
    value: float
    unit: str
    baseline: float
    target: float | None = None
    #: "ratio": the target bounds value/baseline; "value": it bounds the value itself.
    target_kind: str = "ratio"
    #: False: the target is an upper bound (times, memory); True: a lower bound (throughput).
    higher_is_better: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """value / baseline (how many times the baseline)."""
        return self.value / self.baseline if self.baseline else float("inf")

    @property
    def meets_target(self) -> bool | None:
        """Whether the target holds; None when there is none."""
        if self.target is None:
            return None
        measured = self.ratio if self.target_kind == "ratio" else self.value
        return measured >= self.target if self.higher_is_better else measured <= self.target

    @property
    def bound(self) -> str:
        """How the target bounds its figure: ">=" (at least) or "<=" (at most)."""
        return ">=" if self.higher_is_better else "<="

    def as_json(self) -> dict[str, Any]:
        """The record of latest.json."""
        record = asdict(self)
        record.pop("target_kind")
        record.pop("higher_is_better")
        record["ratio"] = round(self.ratio, 3)
        record["meets_target"] = self.meets_target
        record["details"] = {
            "target_applies_to": self.target_kind,
            "target_is": self.bound,
            **self.details,
        }
        return {key: record[key] for key in RESULT_KEYS}


RESULT_KEYS = ("name", "value", "unit", "baseline", "ratio", "target", "meets_target", "details")

Runner = Callable[[Options], Awaitable[list[Result]]]

#: name -> runner, filled by the @benchmark decorators of the bench modules.
BENCHMARKS: dict[str, Runner] = {}


def benchmark(name: str) -> Callable[[Runner], Runner]:
    """Register a benchmark under `name`; its results are named `name` or `name.<figure>`."""

    def register(runner: Runner) -> Runner:
        if name in BENCHMARKS:
            raise ValueError(f"benchmark {name!r} is registered twice")
        BENCHMARKS[name] = runner
        return runner

    return register
