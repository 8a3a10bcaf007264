"""The mutation score per module, from mutmut's results (run by `make mutation`).

    python -m tests.mutation_score

A mutant counts as killed when a test failed or timed out with it. Mutants listed in
tests/data/equivalent_mutants.txt (each with why it computes the same thing) are left out of
the score. Exits 1 when a module scores under 80%.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

THRESHOLD = 0.80
DETECTED = {"killed", "timeout", "caught by type check", "segfault"}
EQUIVALENT_FILE = Path(__file__).parent / "data" / "equivalent_mutants.txt"


def equivalent_mutants() -> set[str]:
    """The names in the equivalent-mutants file: the first word of each line, # comments."""
    lines = EQUIVALENT_FILE.read_text().splitlines() if EQUIVALENT_FILE.exists() else []
    return {line.split()[0] for line in lines if line.strip() and not line.startswith("#")}


def main() -> int:
    results = subprocess.run(
        [Path(sys.executable).with_name("mutmut"), "results", "--all", "true"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    equivalent = equivalent_mutants()
    killed, total, excluded = Counter(), Counter(), Counter()
    for line in results.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if not name:
            continue
        module = name.split(".x_")[0].split(".xǁ")[0]
        if name in equivalent:
            excluded[module] += 1
            continue
        total[module] += 1
        killed[module] += status in DETECTED
    failing = []
    for module in sorted(total):
        score = killed[module] / total[module]
        sys.stdout.write(
            f"{module:32s} {killed[module]:4d} of {total[module]:4d} killed  {score:6.1%}"
            f"  ({excluded[module]} equivalent left out)\n"
        )
        if score < THRESHOLD:
            failing.append(module)
    if failing:
        sys.stdout.write(f"under {THRESHOLD:.0%}: {', '.join(failing)}\n")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
