"""``make bench-servers``: bare and guarded apps on real servers, under ``wrk``.

One server worker pinned to CPU 0 with ``taskset``, ``wrk`` (Debian package ``wrk``) on
CPU 1 with 64 connections; uvicorn (uvloop and httptools) for Starlette and FastAPI,
gunicorn's sync worker for Django and Flask. Every measured request is a cache hit of one
aal2 session. Reported: throughput guarded / bare, the server's CPU per request (from
``/proc``), p99 latency, and replies that were not 200 (must be 0). Bare and guarded run
alternately, twice each; the medians are kept. Run: ``python -m benchmarks.servers``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from kratos_aal.testing import FakeKratos, reserve_port, serve
from kratos_aal.testing._serve import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TICKS = os.sysconf("SC_CLK_TCK")
#: (row, server, bare factory, guarded factory)
PAIRS = [
    ("Starlette, uvicorn", "uvicorn", "starlette_bare", "starlette_guarded"),
    (
        "FastAPI RequireAAL vs empty Depends, uvicorn",
        "uvicorn",
        "fastapi_empty_depends",
        "fastapi_guarded",
    ),
    ("Django @require_aal2, gunicorn sync", "gunicorn", "django_bare", "django_guarded"),
    ("Flask @require_aal2, gunicorn sync", "gunicorn", "flask_bare", "flask_guarded"),
]


def _command(server: str, factory: str, port: int) -> list[str]:
    target = f"benchmarks._server_apps:{factory}"
    if server == "uvicorn":
        return [
            str(BIN / "python"), "-m", "uvicorn", "--factory", target,
            "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop",
            "--http", "httptools", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    return [
        str(BIN / "gunicorn"), "--workers", "1", "--worker-class", "sync",
        "--bind", f"127.0.0.1:{port}", "--log-level", "warning", f"{target}()",
    ]  # fmt: skip


def _cpu_ticks(pid: int) -> int:
    """Return user + system ticks of *pid* and its children (gunicorn's worker)."""
    total = 0
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        pids += [int(child) for child in children]
    for one in pids:
        fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


def _wrk(url: str, cookie: str, seconds: float) -> dict[str, float]:
    command = ["taskset", "-c", "1", "wrk", "-t", "2", "-c", "64", "-d", f"{seconds:g}s"]
    out = subprocess.run(  # noqa: S603 - our own fixed command line
        [*command, "--latency", "-H", f"Cookie: {cookie}", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
        "non_200": int(bad.group(1)) if bad else 0,
        "errors": sum(int(n) for n in errors.groups()) if errors else 0,
    }


def _run(server: str, factory: str, kratos: str, cookie: str, seconds: float) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "KRATOS_URL": kratos, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(  # noqa: S603 - our own fixed command line
        ["taskset", "-c", "0", *_command(server, factory, port)],  # noqa: S607 - from PATH
        env=env,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                reply = httpx.get(url, headers={"Cookie": cookie}, timeout=5)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert reply.status_code == 200, (factory, reply.status_code)
        _wrk(url, cookie, 1)  # warm-up, outside the measured window
        before = _cpu_ticks(process.pid)
        result = _wrk(url, cookie, seconds)
        result["cpu_us"] = (_cpu_ticks(process.pid) - before) / TICKS / result["requests"] * 1e6
        return result
    finally:
        process.terminate()
        process.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.servers", description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per run")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("needs wrk and taskset (Debian: apt-get install wrk util-linux)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    sock = reserve_port()
    kratos = f"http://127.0.0.1:{sock.getsockname()[1]}"
    fake = FakeKratos(public_url=kratos, whoami_required_aal="aal1")
    cookie = "csrftoken=Zm9vYmFyYmF6cXV4cXV1eA; " + fake.session("aal2").cookie_header
    rows = []
    with serve(fake, sock=sock):
        for figure, server, bare, guarded in PAIRS:
            runs: dict[str, list[dict[str, Any]]] = {"bare": [], "guarded": []}
            for _ in range(args.rounds):
                runs["bare"].append(_run(server, bare, kratos, cookie, args.seconds))
                runs["guarded"].append(_run(server, guarded, kratos, cookie, args.seconds))

            def median(side: str, key: str, runs: Any = runs) -> float:
                return float(statistics.median(run[key] for run in runs[side]))

            bad = sum(run["non_200"] + run["errors"] for side in runs.values() for run in side)
            ratio = median("guarded", "rps") / median("bare", "rps")
            rows.append(
                f"| {figure} | {median('bare', 'cpu_us'):.0f} → {median('guarded', 'cpu_us'):.0f}"
                f" | {median('bare', 'rps'):,.0f} → {median('guarded', 'rps'):,.0f} ({ratio:.2f})"
                f" | {median('bare', 'p99_ms'):.1f} → {median('guarded', 'p99_ms'):.1f}"
                f" | {bad} |"
            )
            print(rows[-1], file=sys.stderr, flush=True)
    print(
        "\n| Server | CPU µs per request, bare → guarded | requests/s, bare → guarded (ratio) "
        "| p99 ms, bare → guarded | replies not 200 |"
    )
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    print(
        f"\n(server on CPU 0, wrk -c 64 on CPU 1; {sys.platform}, Python "
        f"{sys.version.split()[0]}, {time.perf_counter() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
