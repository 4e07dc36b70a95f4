"""Run every benchmark one after another (`python -m bench`, `make bench`) and print their reports.

Each runs in its own process so one benchmark's threads, pools and caches cannot skew the next; pass
benchmark names to run only those (`python -m bench snippets receive`).
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = (
    "snippets",
    "highlight",
    "session_memory",
    "receive",
    "emulator",
    "engine",
    "ack",
    "ledger",
    "workers",
    "viewers",
)


def main(argv: list[str]) -> int:
    """Run the named benchmarks (all by default); return non-zero if any failed."""
    names = argv or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    failed = []
    for name in names:
        print(f"\n## bench.bench_{name}\n", flush=True)
        if subprocess.run([sys.executable, "-m", f"bench.bench_{name}"], check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
