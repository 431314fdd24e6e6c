"""Run the benchmarks: `python -m bench [NAME ...] [--rounds N] [--list]` (`make bench`).

Every module of the bench package registers its benchmarks with `@benchmark(name)`; this runs
all of them, or the named ones, prints a short table, and merges the results into
bench/results/latest.json keyed by result name (results of a benchmark that ran replace its
previous ones; others are kept).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import pkgutil
import platform
import sys
import time
import traceback
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench
from bench.registry import BENCHMARKS, Options, Result

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
#: Modules that are helpers, not benchmarks (also anything starting with "_").
HELPERS = {"registry", "stats"}


def discover() -> None:
    """Import every bench module so that its @benchmark decorators run."""
    for module in pkgutil.iter_modules(bench.__path__):
        if module.name.startswith("_") or module.name in HELPERS:
            continue
        importlib.import_module(f"bench.{module.name}")


def merge(
    previous: list[dict[str, Any]], ran: list[str], new: list[Result]
) -> list[dict[str, Any]]:
    """latest.json after this run: the runs' results replace those of the same benchmark."""

    def owner(name: str) -> str:
        return name.split(".", 1)[0]

    kept = [record for record in previous if owner(record["name"]) not in ran]
    merged = {record["name"]: record for record in kept}
    for result in new:
        merged[result.name] = result.as_json()
    return [merged[name] for name in sorted(merged)]


def table(results: list[Result]) -> str:
    """A short human table."""
    rows = [("benchmark", "value", "baseline", "ratio", "target", "ok")]
    for r in results:
        target = (
            ""
            if r.target is None
            else (
                f"ratio {r.bound} {r.target:g}"
                if r.target_kind == "ratio"
                else f"{r.bound} {r.target:g} {r.unit}"
            )
        )
        ok = {True: "yes", False: "NO", None: "-"}[r.meets_target]
        rows.append(
            (
                r.name,
                f"{r.value:.4g} {r.unit}",
                f"{r.baseline:.4g} {r.unit}",
                f"{r.ratio:.2f}x",
                target,
                ok,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
    )


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks; exit 1 when one of them failed to run."""
    discover()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default all): {', '.join(sorted(BENCHMARKS))}"
    )
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds per benchmark")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--no-write", action="store_true", help="do not update latest.json")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(sorted(BENCHMARKS)))
        return 0
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(sorted(BENCHMARKS))}"
        )
    names = args.names or sorted(BENCHMARKS)
    options = Options(rounds=args.rounds, quick=args.quick)

    results: list[Result] = []
    failed: list[str] = []
    for name in names:
        print(f"==> {name}", flush=True)
        started = time.perf_counter()
        try:
            found = asyncio.run(BENCHMARKS[name](options))
        except Exception:  # one broken benchmark must not lose the others' results
            traceback.print_exc()
            failed.append(name)
            continue
        stamp = {
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - started, 1),
            "python": platform.python_version(),
            "machine": f"{platform.system()} {platform.machine()}",
        }
        results.extend(replace(r, details={**r.details, "run": stamp}) for r in found)
    print()
    print(table(results))
    ran = [name for name in names if name not in failed]
    if not args.no_write and not options.quick and ran:
        previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        temporary = RESULTS.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(merge(previous, ran, results), indent=2) + "\n")
        temporary.replace(RESULTS)
        print(f"\nwrote {RESULTS}")
    if failed:
        print(f"\nfailed to run: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
