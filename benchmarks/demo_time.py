"""Time ``make demo`` in a fresh clone: from the command to the app's first answer.

Clones the committed HEAD (or ``--ref``) into a temporary directory, runs ``make demo`` there
on free ports, and prints the seconds until the app answers ``GET /``. Only the standard
library: it runs before any venv exists. pip's and uv's caches are used as they are (say
whether warm; point PIP_CACHE_DIR and UV_CACHE_DIR at empty folders for a cold start).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """Return a loopback port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answered(url: str) -> bool:
    """Tell whether *url* answers at all (any HTTP status counts)."""
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def measure(ref: str, port: int | None, limit: float) -> float:
    """Clone *ref*, run ``make demo`` in it, return the seconds to the first answer."""
    with tempfile.TemporaryDirectory(prefix="kratos-aal-demo-time-") as tmp:
        clone = Path(tmp) / "kratos-aal"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", ref], check=True)
        app_port = port or free_port()
        args = f"--port {app_port} --kratos-port {free_port()} --no-qr"
        started = time.monotonic()
        process = subprocess.Popen(
            ["make", "demo", f"DEMO_ARGS={args}"],
            cwd=clone,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # so that the demo and make stop together
        )
        try:
            while not answered(f"http://127.0.0.1:{app_port}/"):
                if process.poll() is not None:
                    raise SystemExit(f"make demo ended with {process.returncode} before answering")
                if time.monotonic() - started > limit:
                    raise SystemExit(f"no answer within {limit:.0f} s")
                time.sleep(0.1)
            return time.monotonic() - started
        finally:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def main() -> None:
    """Print the time from ``make demo`` on a fresh clone to the first answer."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ref", default="HEAD", help="the commit to clone (default: HEAD)")
    parser.add_argument(
        "--port", type=int, help="the app's port, for commits whose demo ignores DEMO_ARGS"
    )
    parser.add_argument("--limit", type=float, default=600, help="give up after this many s")
    args = parser.parse_args()
    seconds = measure(args.ref, args.port, args.limit)
    print(f"make demo on a fresh clone ({args.ref}): first answer after {seconds:.1f} s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
