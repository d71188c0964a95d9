"""Run a command while N CPU-bound processes run beside it (`make test-busy`).

Usage: python tools/busy.py N -- COMMAND...

The suite must not depend on how fast the machine is: on a 2-core machine, two busy
processes leave it about half the CPU it would otherwise have. Prints the command's wall
time and exits with its status.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time


def _spin() -> None:
    while True:
        pass


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    count = int(argv[0])
    burners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(count)]
    for burner in burners:
        burner.start()
    started = time.monotonic()
    try:
        status = subprocess.call(argv[2:])  # noqa: S603 - the command line make gave us
    finally:
        for burner in burners:
            burner.terminate()
        for burner in burners:
            burner.join()
    elapsed = time.monotonic() - started
    print(
        f"busy.py: {' '.join(argv[2:])} exited {status} after {elapsed:.0f} s "
        f"beside {count} CPU-bound processes"
    )
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
