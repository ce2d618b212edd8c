"""Run the property suites deep: every ``tests/test_properties_*.py``, with many generated cases per
test, and count the cases Hypothesis ran.

    PYTHONPATH=... python benchmarks/properties.py                    # 1,200 examples per test
    PYTHONPATH=... python benchmarks/properties.py --examples 2000 tests/test_properties_numbers.py

The suites read ``LMBRIDGE_PROPERTY_EXAMPLES`` for their example count (the unit suite runs a few
dozen). Each suite checks, on every generated completion, saved file or HTTP body, that nothing
escapes but the documented exceptions and that every value read is stated in the text. This script
sets the count, runs pytest once with ``--hypothesis-show-statistics``, and prints the generated
cases per file (passing, failing) and in total, and whether the total reached the goal (50,000 by
default). Suites with a fixed count of their own (the HTTP ones, where each case is a real request
to a loopback server) run at that count. Exit status: pytest's, or 1 when the goal was not reached.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_TEST = re.compile(r"^(tests/\S+?\.py)::\S+:$")
_COUNTS = re.compile(r"(\d+) passing.*?(\d+) failing.*?(\d+) invalid")


def count_cases(output: str) -> dict[str, list[int]]:
    """Generated cases per test file, as [passing, failing], from Hypothesis' statistics."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    current = ""
    for line in output.splitlines():
        test = _TEST.match(line.strip())
        if test:
            current = test.group(1)
            continue
        found = _COUNTS.search(line)
        if found and current:
            counts[current][0] += int(found.group(1))
            counts[current][1] += int(found.group(2))
    return dict(counts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", help="property test files (default: tests/test_properties_*.py)")
    parser.add_argument("--examples", type=int, default=1200, help="examples per test (default: 1200)")
    parser.add_argument("--goal", type=int, default=50_000, help="generated cases to reach (default: 50000)")
    args = parser.parse_args()
    files = args.files or sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_properties_*.py"))
    env = {**os.environ, "LMBRIDGE_PROPERTY_EXAMPLES": str(args.examples)}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--hypothesis-show-statistics",
               "-m", "not real_model", *files]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    counts = count_cases(proc.stdout)
    print(f"property suites, LMBRIDGE_PROPERTY_EXAMPLES={args.examples}, {elapsed:.0f} s")
    for name, (passing, failing) in sorted(counts.items()):
        print(f"  {name:<44} {passing:>8,} passing  {failing:>4} failing")
    total = sum(p for p, _ in counts.values())
    failed = sum(f for _, f in counts.values())
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "(no pytest output)"
    print(f"  {'total':<44} {total:>8,} passing  {failed:>4} failing   (pytest: {summary})")
    reached = total + failed >= args.goal
    print(f"goal of {args.goal:,} generated cases: {'reached' if reached else 'NOT reached'}")
    if proc.returncode != 0:
        print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n", file=sys.stderr)
        return proc.returncode
    return 0 if reached else 1


if __name__ == "__main__":
    sys.exit(main())
