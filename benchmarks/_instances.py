"""``make bench``, several instances: 4 processes share a Redis (SPEC §5a, issue 14).

* whoami calls for 10,000 requests over 100 sessions in 4 processes, with the shared
  cache against per-process caches;
* logout on one instance to denial on every other (Redis pub/sub), in milliseconds;
* a local cache hit with a shared cache configured against one without (the hit path must
  not change: a hit never touches Redis).

Needs Debian's redis-server; without it the figures say so and the rest of the run goes on.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from kratos_aal.testing._redis import redis_binary, running_redis

PROCESSES = 4
SESSIONS = 100
REQUESTS = 10_000
SECRET = "benchmark-secret-0123456789"
Row = Callable[[str, str, str, str], None]


@contextmanager
def redis_server() -> Iterator[str | None]:
    """Run redis-server on a free loopback port, no persistence; yield its URL (or None)."""
    binary = redis_binary()
    if binary is None:
        yield None
        return
    with running_redis(binary) as server:
        yield server.url


class Child:
    """One instance in its own process, driven line by line over its stdin."""

    def __init__(self, kratos_url: str, cache_url: str | None) -> None:
        argv = [sys.executable, "-m", "benchmarks._instances", kratos_url, cache_url or "-"]
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=_root()
        )
        assert self.read() == "ready"

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def read(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def close(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        self.process.wait(30)
        self.process.stdout.close()


def _root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _child(kratos_url: str, cache_url: str) -> None:
    from kratos_aal import Credentials, KratosClient, KratosConfig

    shared: dict[str, Any] = (
        {} if cache_url == "-" else {"cache_url": cache_url, "cache_key_secret": SECRET}
    )
    config = KratosConfig(kratos_url, local_cache_ttl=60, cache_ttl=60, **shared)
    with KratosClient(config) as client:
        print("ready", flush=True)
        for line in sys.stdin:
            verb, *words = line.split()
            if verb == "load":  # load SEED COUNT COOKIE...
                rng = random.Random(int(words[0]))
                cookies = words[2:]
                for _ in range(int(words[1])):
                    client.check(Credentials(cookie=rng.choice(cookies)), "aal1")
                print("done", flush=True)
            elif verb == "hold":  # hold COOKIE: look it up, so that it is held locally
                print(client.check(Credentials(cookie=words[0]), "aal1").outcome.value, flush=True)
            elif verb == "watch":  # watch COOKIE: check until denied; print the wall time
                credentials = Credentials(cookie=words[0])
                while client.check(credentials, "aal1").allowed:
                    time.sleep(0.0005)
                print(repr(time.time()), flush=True)


def _whoami_calls(kratos_url: str, cache_url: str | None, fake: Any) -> int:
    cookies = [fake.session("aal1").cookie for _ in range(SESSIONS)]
    children = [Child(kratos_url, cache_url) for _ in range(PROCESSES)]
    try:
        before = fake.calls["/sessions/whoami"]
        for seed, child in enumerate(children):
            child.send(f"load {seed} {REQUESTS // PROCESSES} {' '.join(cookies)}")
        for child in children:
            assert child.read() == "done"
        return int(fake.calls["/sessions/whoami"] - before)
    finally:
        for child in children:
            child.close()


def _logout_latency(kratos_url: str, cache_url: str, fake: Any, rounds: int) -> list[float]:
    from kratos_aal import Credentials, KratosClient, KratosConfig

    config = KratosConfig(
        kratos_url, cache_url=cache_url, cache_key_secret=SECRET, local_cache_ttl=60
    )
    children = [Child(kratos_url, cache_url) for _ in range(PROCESSES - 1)]
    latencies = []
    try:
        with KratosClient(config) as here:
            for _ in range(rounds):
                session = fake.session("aal1")
                for child in children:
                    child.send(f"hold {session.cookie}")
                    assert child.read() == "allow"
                    child.send(f"watch {session.cookie}")
                time.sleep(0.05)  # every watcher is polling its local copy
                fake.revoke(session)
                logged_out = time.time()
                here.invalidate(Credentials(cookie=session.cookie))
                denied = max(float(child.read()) for child in children)
                latencies.append(denied - logged_out)
    finally:
        for child in children:
            child.close()
    return latencies


def _hit_ratio(cache_url: str, rounds: int) -> float:
    from kratos_aal import Credentials, KratosClient
    from kratos_aal.testing import FakeKratos

    fake = FakeKratos(whoami_required_aal="aal1")
    session = fake.session("aal2")
    credentials = Credentials(cookie=session.cookie)
    local = KratosClient(fake.config(), http_client=httpx.Client(transport=fake.transport()))
    shared = KratosClient(
        fake.config(cache_url=cache_url, cache_key_secret=SECRET, local_cache_ttl=3600),
        http_client=httpx.Client(transport=fake.transport()),
    )
    times: dict[str, list[float]] = {"local": [], "shared": []}
    for client in (local, shared):
        assert client.check(credentials, "aal2").allowed
    for _ in range(rounds):
        for name, client in (("local", local), ("shared", shared)):
            start = time.perf_counter()
            for _ in range(2000):
                client.check(credentials, "aal2")
            times[name].append(time.perf_counter() - start)
    local.close()
    shared.close()
    return statistics.median(times["shared"]) / statistics.median(times["local"])


def several_instances(row: Row, quick: bool = False) -> None:
    """Measure whoami calls, logout latency and the hit path with 4 instances and Redis."""
    from kratos_aal.testing import FakeKratos, reserve_port, serve

    with redis_server() as cache_url:
        if cache_url is None:
            row("Several instances", "skipped", "redis-server installed", "n/a")
            return
        # First, while nothing else of this benchmark runs beside it.
        ratio = _hit_ratio(cache_url, 9 if quick else 15)
        row(
            "cache hit with a shared cache configured / without",
            f"{ratio:.2f}x",
            "1.00x (a hit never touches Redis)",
            "ok" if ratio < 1.15 else "MISSED",
        )
        sock = reserve_port()
        kratos_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        fake = FakeKratos(public_url=kratos_url, whoami_required_aal="aal1")
        with serve(fake, sock=sock):
            alone = _whoami_calls(kratos_url, None, fake)
            shared = _whoami_calls(kratos_url, cache_url, fake)
            verdict = "ok" if shared <= PROCESSES * SESSIONS and shared < alone else "MISSED"
            label = f"{PROCESSES} processes, {REQUESTS:,} requests, {SESSIONS} sessions"
            row(f"whoami calls, {label}, per-process caches", str(alone), "400 (today)", "ok")
            row(
                f"whoami calls, {label}, shared Redis cache",
                str(shared),
                "100 (at most 400)",
                verdict,
            )
            latencies = _logout_latency(kratos_url, cache_url, fake, 5 if quick else 20)
            worst = max(latencies) * 1000
            row(
                f"logout on one instance to denial on {PROCESSES - 1} others (median / worst)",
                f"{statistics.median(latencies) * 1000:.1f} / {worst:.1f} ms",
                "100 ms",
                "ok" if worst <= 100 else "MISSED",
            )


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
