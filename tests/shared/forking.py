"""Run as a script: a client used before ``fork()`` (gunicorn --preload), then its workers.

``python -m tests.shared.forking REDIS_URL``. The parent serves FakeKratos on a real port,
uses one client (its exchange threads, a pooled connection to Kratos, the shared tier's
listener) and forks while one of its threads holds the tier's lock. Each child checks
sessions of distinct identities at once on several threads, then waits for a logout the
parent publishes. Prints one line per child; exits 0 when every child did it all.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import redis

from kratos_aal import Credentials, KratosClient
from kratos_aal.testing import FakeKratos, reserve_port, serve
from kratos_aal.testing._serve import url_of

CHILDREN = 2
#: Seconds a child may take for anything; a hang past it is a failure, not a stuck test.
LIMIT = 10.0


def child(
    client: KratosClient, fake_sessions: list[tuple[str, str]], watched: str, ready: int
) -> int:
    """Check every session (on 4 threads), keep *watched*, wait for its logout message."""
    threading.Timer(LIMIT, lambda: os._exit(3)).start()

    def identity_of(cookie: str) -> str | None:
        decision = client.check(Credentials(cookie=cookie), "aal1")
        session = decision.session
        return session.identity.id if session is not None and session.identity else None

    # One lookup alone first: no other job can start a thread that would run it.
    cookie, want = fake_sessions[0]
    wrong = int(identity_of(cookie) != want)
    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(identity_of, [cookie for cookie, _ in fake_sessions[1:]]))
    wrong += sum(got != want for got, (_, want) in zip(found, fake_sessions[1:], strict=True))
    wrong += not client.check(Credentials(cookie=watched), "aal1").allowed
    held = len(client._cache)
    os.write(ready, b"r")  # the parent may log the watched session out now
    deadline = time.monotonic() + LIMIT / 2
    while len(client._cache) == held and time.monotonic() < deadline:
        time.sleep(0.005)
    dropped = len(client._cache) < held
    print(f"child {os.getpid()} wrong={wrong} dropped={dropped}", flush=True)
    return 0 if wrong == 0 and dropped else 1


def main(redis_url: str) -> int:
    sock = reserve_port()
    fake = FakeKratos(public_url=url_of(sock), whoami_required_aal="aal1")
    with serve(fake, sock=sock):
        client = KratosClient(
            fake.config(
                cache_url=redis_url,
                cache_key_secret="a-test-secret-of-enough-length",
                local_cache_ttl=60,
            )
        )
        # The parent uses it: threads, a kept-alive connection, the listener.
        assert client.check(Credentials(cookie=fake.session("aal1").cookie), "aal1").allowed
        sessions = [fake.session("aal1") for _ in range(24)]
        pairs = [(one.cookie, one.identity.id) for one in sessions]
        watched = fake.session("aal1")
        assert client._shared is not None
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            assert client._shared is not None
            with client._shared._lock:
                held.set()
                release.wait()

        holder = threading.Thread(target=hold)
        holder.start()
        held.wait()
        pids = []
        ready_read, ready_write = os.pipe()
        for _ in range(CHILDREN):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - measured in the parent only
                os._exit(child(client, pairs, watched.cookie, ready_write))
            pids.append(pid)
        os.close(ready_write)  # so that a read ends when every child has gone
        release.set()
        holder.join()
        readies = b""
        while len(readies) < CHILDREN:
            readies += os.read(ready_read, CHILDREN) or b"x" * CHILDREN  # a child died
        # Every child subscribed (and the parent): then the logout is published.
        probe = redis.Redis.from_url(redis_url)
        channel = client._shared.channel
        deadline = time.monotonic() + LIMIT
        while dict(probe.pubsub_numsub(channel)).get(channel.encode(), 0) < CHILDREN + 1:
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        probe.close()
        fake.revoke(watched)
        client.invalidate(Credentials(cookie=watched.cookie))
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
        client.close()
    print("codes", codes, flush=True)
    return 0 if codes == [0] * CHILDREN else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
