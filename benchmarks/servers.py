"""``make bench-servers``: bare and guarded apps on real servers, under ``wrk``.

One server worker pinned to CPU 0 with ``taskset``, ``wrk`` (Debian package ``wrk``) on
CPU 1 with 64 connections; uvicorn (uvloop and httptools) for Starlette and FastAPI,
gunicorn's sync worker for Django and Flask. Every measured request is a cache hit of one
aal2 session, with the headers a browser sends. Reported: throughput guarded / bare, the
server's CPU per request (from ``/proc``) and what the guard adds to it, p99 latency, and
replies that were not 200 (must be 0). The sides of a row run interleaved, ``--rounds``
times each (the order rotates every round). Ratios and added CPU are paired per round (the
guarded run against the bare run of the same round, so a slow spell slows both) and shown
as the median with the min-max across rounds; a row meets its throughput target only when
every round does, misses it when none does, and says ``unresolved`` when the rounds
disagree. The last line names the machine: Python, CPUs
and whether it is a container or a virtual machine.

FastAPI has three sides, all with ``KratosAALMiddleware`` mounted without rules: a route
without dependencies, the same with an empty ``Depends``, and ``Depends(require_aal2)``.
The dependency's added CPU is (RequireAAL - bare) / (empty - bare), target at most 2.0.

The p99 tail (60-100 ms guarded against 23-28 ms bare in issue 13) was the start of each
``wrk`` run, not kratos-aal. Probed on 2026-11-28 (FastAPI, 64 connections, 4 s runs, no
stagger): p99 89-123 ms guarded and 31-58 ms bare, max 250-330 and 210-250 ms. The slow
requests were a fixed few hundred per run whatever its length (p99 of a 12 s run: 18-26
ms, max still 300 ms), so a start-up transient, and the longest wait matched 64²/2
requests' worth of server CPU (330 ms at 160 µs a request, 250 ms at 123 µs, 92 ms for
bare Starlette at 45 µs; 20 ms with 16 connections, measured 17-23 ms): while ``wrk``
opens its connections and already sends on the first ones, uvloop serves the ones it has
before it takes in the rest. Unchanged with the collector disabled (p99 133 ms) or frozen
after start-up (113 ms), with the server unpinned (78 ms) or one ``wrk`` thread (98 ms);
absent with uvicorn's asyncio loop (p99 30 ms, max 48 ms). The guarded side looked worse
only because its requests cost more. So each connection's first request now waits
``STAGGER_S`` (a ``wrk`` Lua ``delay``; throughput counts the time after it): every
connection is open before load starts, and p99 is 11-20 ms guarded, max 20-31 ms.
``--stagger 0`` brings the old tail back; ``--gc``, ``--loop``, ``--connections`` and
``--no-pin`` repeat the probes. What remains in a run is other processes on the shared
machine: each run reports how many CPUs they kept busy, and a run disturbed past
``MAX_OTHERS`` is run again once.

Run: ``python -m benchmarks.servers`` (``--help`` for the probe options).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks._browser import BROWSER_HEADERS, browser_cookie
from kratos_aal.testing import FakeKratos, reserve_port, serve
from kratos_aal.testing._serve import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TICKS = os.sysconf("SC_CLK_TCK")
#: Seconds each connection waits before its first request (see the module docstring).
STAGGER_S = 0.3
#: A run during which other processes kept more than this many CPUs busy is run again
#: once (the quieter of the two is kept): the machine is shared.
MAX_OTHERS = 0.25
#: The FastAPI dependency's added CPU must stay within this many empty ``Depends``.
ADDED_TARGET = 2.0


@dataclass(frozen=True)
class Row:
    """One line of the table: a server and its sides (label, factory), bare first.

    *target*: the least throughput guarded / bare that the row must keep (issue 28).
    """

    figure: str
    server: str
    sides: tuple[tuple[str, str], ...]
    target: float


ROWS = (
    Row(
        "Starlette `KratosAALMiddleware`, uvicorn",
        "uvicorn",
        (("bare", "starlette_bare"), ("guarded", "starlette_guarded")),
        0.85,
    ),
    Row(
        "FastAPI `Depends(require_aal2)`, uvicorn",
        "uvicorn",
        (
            ("bare", "fastapi_bare"),
            ("empty Depends", "fastapi_empty_depends"),
            ("guarded", "fastapi_guarded"),
        ),
        0.85,
    ),
    Row(
        "Django `@require_aal2`, gunicorn sync",
        "gunicorn",
        (("bare", "django_bare"), ("guarded", "django_guarded")),
        0.9,
    ),
    Row(
        "Flask `@require_aal2`, gunicorn sync",
        "gunicorn",
        (("bare", "flask_bare"), ("guarded", "flask_guarded")),
        0.9,
    ),
)

#: Percentiles the Lua ``done`` reports, in this order.
PERCENTILES = (50, 90, 99)


def wrk_script(per_thread: int, stagger_ms: int) -> str:
    """Return the ``wrk`` Lua script: count non-200 replies, delay first requests, report.

    ``wrk`` itself counts only statuses above 399, so a redirect would pass unseen.
    """
    delay = (
        f"""
local calls = 0
function delay()
  calls = calls + 1
  if calls <= {per_thread} then return {stagger_ms} end
  return 0
end
"""
        if stagger_ms
        else ""
    )
    percentiles = ", ".join(f"latency:percentile({p})" for p in PERCENTILES)
    keys = " ".join(f"p{p}_us=%d" for p in PERCENTILES)
    return f"""local threads = {{}}
function setup(thread) table.insert(threads, thread) end
non200 = 0
function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end
{delay}
function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("non200") end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d {keys} max_us=%d non200=%d errors=%d\\n",
    summary.requests, summary.duration, {percentiles}, latency.max, bad,
    e.connect + e.read + e.write + e.timeout))
end
"""


def parse_wrk(out: str, stagger_s: float) -> dict[str, float]:
    """Read the ``BENCH`` line of :func:`wrk_script` from *out*; times in ms.

    Throughput counts only the time after the stagger, when every connection sends.
    """
    match = re.search(r"^BENCH (.*)$", out, re.MULTILINE)
    if match is None:
        raise ValueError(f"no BENCH line in wrk's output: {out!r}")
    fields = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}
    loaded = fields["duration_us"] / 1e6 - stagger_s
    if loaded <= 0:
        raise ValueError(f"the run was not longer than the stagger ({stagger_s} s)")
    result: dict[str, float] = {
        "requests": fields["requests"],
        "rps": fields["requests"] / loaded,
        "max_ms": fields["max_us"] / 1e3,
        "non_200": fields["non200"],
        "errors": fields["errors"],
    }
    for p in PERCENTILES:
        result[f"p{p}_ms"] = fields[f"p{p}_us"] / 1e3
    return result


def added_ratio(bare: float, empty: float, guarded: float) -> float:
    """Return how many empty ``Depends`` the guarded side adds over bare."""
    if empty <= bare:
        return float("inf")  # an empty Depends measured as free: no ratio to speak of
    return (guarded - bare) / (empty - bare)


def verdict(ratio: float, target: float = ADDED_TARGET) -> str:
    """Say whether *ratio* meets *target*."""
    return "met" if ratio <= target else "missed"


def _command(server: str, factory: str, port: int, loop: str) -> list[str]:
    target = f"benchmarks._server_apps:{factory}"
    if server == "uvicorn":
        return [
            str(BIN / "python"), "-m", "uvicorn", "--factory", target,
            "--host", "127.0.0.1", "--port", str(port), "--loop", loop,
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


def busy_ticks(stat: str) -> int:
    """Return the ticks all CPUs spent busy, from the text of ``/proc/stat``."""
    values = [int(value) for value in stat.split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return user + nice + system + irq + softirq + steal


def _children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Options:
    """How each run is made (the command line's probe options)."""

    seconds: int
    connections: int
    threads: int
    stagger: float
    pin: bool
    gc: str
    loop: str


def browser_headers(url: str, cookie: str) -> list[str]:
    """Return ``wrk``'s ``-H`` arguments: a browser's headers, same-origin Referer, *cookie*.

    ``wrk`` sends ``Host`` itself; ``Connection: keep-alive`` is its default.
    """
    headers = [
        f"{name.title()}: {url}account" if name == "referer" else f"{name.title()}: {value}"
        for name, value in BROWSER_HEADERS
        if name != "connection"
    ]
    return [part for header in [*headers, f"Cookie: {cookie}"] for part in ("-H", header)]


def _wrk(url: str, cookie: str, seconds: int, options: Options) -> dict[str, float]:
    stagger_ms = round(options.stagger * 1000)
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(wrk_script(options.connections // options.threads, stagger_ms))
        script.flush()
        command = [
            "wrk", "-t", str(options.threads), "-c", str(options.connections),
            "-d", f"{seconds}s", "-s", script.name,
            *browser_headers(url, cookie), url,
        ]  # fmt: skip
        if options.pin:
            command = ["taskset", "-c", "1", *command]
        done = subprocess.run(  # noqa: S603 - our own fixed command line
            command, capture_output=True, text=True, check=False
        )
    if done.returncode:
        # Not CalledProcessError: its message would show the command, cookie and all.
        raise RuntimeError(f"wrk failed with {done.returncode}: {done.stderr.strip()}")
    return parse_wrk(done.stdout, options.stagger)


def _busy() -> int:
    return busy_ticks(Path("/proc/stat").read_text())


def _run(server: str, factory: str, kratos: str, cookie: str, options: Options) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "KRATOS_URL": kratos, "PYTHONPATH": str(ROOT), "BENCH_GC": options.gc}
    command = _command(server, factory, port, options.loop)
    if options.pin:
        command = ["taskset", "-c", "0", *command]
    process = subprocess.Popen(command, env=env, cwd=ROOT)  # noqa: S603 - our own command
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
        _wrk(url, cookie, 1, options)  # warm-up, outside the measured window
        ticks, busy, wrk = _cpu_ticks(process.pid), _busy(), _children_seconds()
        started = time.monotonic()
        result = _wrk(url, cookie, options.seconds, options)
        wall = time.monotonic() - started
        ticks, busy = _cpu_ticks(process.pid) - ticks, _busy() - busy
        result["cpu_us"] = ticks / TICKS / result["requests"] * 1e6
        # What the rest of the machine ran meanwhile, in CPUs: the other helpers, the
        # lead's benchmarks. Our server and wrk are taken out of it.
        others = (busy - ticks) / TICKS - (_children_seconds() - wrk)
        result["others"] = max(others, 0.0) / wall
        return result
    finally:
        process.terminate()
        process.wait(10)


def rotated(items: Sequence[str], turn: int) -> list[str]:
    """Return *items* rotated left by *turn*, so that no side always runs first."""
    shift = turn % len(items)
    return [*items[shift:], *items[:shift]]


def spread(values: Sequence[float], digits: int, *, signed: bool = False) -> str:
    """Return the median of *values* and their min-max: ``0.91 (0.89-0.93)``.

    *signed*: every figure with its sign, ``+22 (-26 to +31)``.
    """
    sign = "+" if signed else ""
    low, high = f"{min(values):{sign}.{digits}f}", f"{max(values):{sign}.{digits}f}"
    mid = f"{statistics.median(values):{sign}.{digits}f}"
    return f"{mid} ({low} to {high})" if signed else f"{mid} ({low}-{high})"


def throughput_verdict(ratios: Sequence[float], target: float) -> str:
    """Say whether the paired throughput *ratios* keep *target*, round by round.

    ``met``: every round did; ``missed``: none did; ``unresolved``: some rounds did and
    some did not (or a single round), so the run cannot tell.
    """
    if len(ratios) < 2:
        return "unresolved"
    if min(ratios) >= target:
        return "met"
    if max(ratios) < target:
        return "missed"
    return "unresolved"


def table_row(row: Row, runs: dict[str, list[dict[str, float]]]) -> str:
    """Return the markdown line of *row* from every side's runs (round by round)."""

    def median(side: str, key: str) -> float:
        return float(statistics.median(run[key] for run in runs[side]))

    def paired(side: str, key: str) -> list[float]:
        return [run[key] for run in runs[side]]

    labels = [label for label, _ in row.sides]
    bare, guarded = labels[0], labels[-1]
    ratios = [g / b for b, g in zip(paired(bare, "rps"), paired(guarded, "rps"), strict=True)]
    added_cpu = [
        g - b for b, g in zip(paired(bare, "cpu_us"), paired(guarded, "cpu_us"), strict=True)
    ]
    cpu = " → ".join(f"{median(label, 'cpu_us'):.0f}" for label in labels)
    p99 = " → ".join(f"{median(label, 'p99_ms'):.1f}" for label in labels)
    added = "-"
    if len(labels) == 3:
        base, empty, full = (median(label, "cpu_us") for label in labels)
        ratio = added_ratio(base, empty, full)
        added = (
            f"+{full - base:.0f} / +{empty - base:.0f} µs = {ratio:.2f}x"
            f" (≤ {ADDED_TARGET:.1f}x: {verdict(ratio)})"
        )
    bad = sum(int(run["non_200"] + run["errors"]) for side in runs.values() for run in side)
    return (
        f"| {row.figure} | {median(bare, 'rps'):,.0f} → {median(guarded, 'rps'):,.0f}"
        f" | {spread(ratios, 2)} | ≥ {row.target:.2f}: {throughput_verdict(ratios, row.target)}"
        f" | {cpu} | {spread(added_cpu, 0, signed=True)} | {added} | {p99} | {bad} |"
    )


HEADER = (
    "| Server | requests/s, bare → guarded | guarded / bare, median (min-max) | target |"
    " server CPU µs per request, bare → guarded | added CPU µs, median (min-max) |"
    " added CPU, RequireAAL / empty `Depends` | p99 ms per side | replies not 200 |"
    "\n|---|---|---|---|---|---|---|---|---|"
)


def machine(cpuinfo: str, detected: str | None, cpus: int, usable: int, python: str) -> str:
    """Say what ran the benchmark: Python, CPUs, and whether it was virtual.

    *cpuinfo* is ``/proc/cpuinfo``; *detected* what ``systemd-detect-virt`` printed (a
    container's or hypervisor's name, ``none``), ``None`` where it is missing. A
    ``hypervisor`` CPU flag means a virtual machine (system calls and timers cost more
    there), whether or not a container runs inside it.
    """
    lines = cpuinfo.splitlines()
    model = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
        "CPU model unknown",
    )
    flags = next((line for line in lines if line.startswith("flags")), "")
    vm = "a virtual machine" if " hypervisor" in flags else "no hypervisor flag"
    inside = "" if detected in (None, "none") else f", {detected}"
    return f"Python {python}, {usable} of {cpus} CPUs usable ({model}), {vm}{inside}"


def _machine() -> str:
    try:
        detected = subprocess.run(
            ["systemd-detect-virt"],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        detected = None
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return machine(
        cpuinfo,
        detected or None,
        os.cpu_count() or 1,
        len(os.sched_getaffinity(0)),
        f"{sys.implementation.name} {sys.version.split()[0]}",
    )


def _report(name: str, run: dict[str, float]) -> None:
    print(
        f"{name}: {run['rps']:,.0f} req/s, {run['cpu_us']:.1f} µs CPU, p50"
        f" {run['p50_ms']:.1f} p90 {run['p90_ms']:.1f} p99 {run['p99_ms']:.1f} max"
        f" {run['max_ms']:.1f} ms, {run['non_200']:.0f} not 200, {run['errors']:.0f} socket"
        f" errors, others {run['others']:.2f} CPUs",
        file=sys.stderr,
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.servers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--seconds", type=int, default=3, help="seconds per run, the stagger included"
    )
    parser.add_argument("--rounds", type=int, default=5, help="runs of each side")
    parser.add_argument("--only", default="", help="rows whose name contains this")
    probe = parser.add_argument_group("probe options (the p99 tail)")
    probe.add_argument("--connections", type=int, default=64)
    probe.add_argument("--threads", type=int, default=2, help="wrk threads")
    probe.add_argument(
        "--stagger", type=float, default=STAGGER_S, help="seconds before first requests"
    )
    probe.add_argument("--no-pin", action="store_true", help="leave server and wrk unpinned")
    probe.add_argument("--gc", choices=("", "freeze", "disable"), default="")
    probe.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("needs wrk and taskset (Debian: apt-get install wrk util-linux)", file=sys.stderr)
        return 2
    options = Options(
        args.seconds,
        args.connections,
        args.threads,
        args.stagger,
        not args.no_pin,
        args.gc,
        args.loop,
    )
    started = time.perf_counter()
    sock = reserve_port()
    kratos = f"http://127.0.0.1:{sock.getsockname()[1]}"
    fake = FakeKratos(public_url=kratos, whoami_required_aal="aal1")
    cookie = browser_cookie(fake.session("aal2"))
    rows = []
    retries, busiest = 0, 0.0
    with serve(fake, sock=sock):
        for row in ROWS:
            if args.only.lower() not in row.figure.lower():
                continue
            factories = dict(row.sides)
            runs: dict[str, list[dict[str, float]]] = {label: [] for label in factories}
            for turn in range(args.rounds):
                for label in rotated(list(factories), turn):
                    run = _run(row.server, factories[label], kratos, cookie, options)
                    _report(f"{row.figure} / {label}", run)
                    if run["others"] > MAX_OTHERS:
                        retries += 1
                        again = _run(row.server, factories[label], kratos, cookie, options)
                        _report(f"{row.figure} / {label}, again", again)
                        run = min(run, again, key=lambda one: one["others"])
                    runs[label].append(run)
                    busiest = max(busiest, run["others"])
            rows.append(table_row(row, runs))
    print(f"\n{HEADER}")
    print("\n".join(rows))
    pinned = "server on CPU 0, wrk on CPU 1" if options.pin else "unpinned"
    print(
        f"\n({pinned}; wrk -t {options.threads} -c {options.connections}, first requests"
        f" after {options.stagger:g} s, {options.seconds} s x {args.rounds} per side,"
        f" paired per round; other processes up to {busiest:.2f} CPUs in a kept run,"
        f" {retries} runs retried; {_machine()}; {time.perf_counter() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
