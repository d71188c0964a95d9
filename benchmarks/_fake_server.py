"""A FakeKratos in a process of its own, so that a benchmark's CPU is the client's alone.

``python -m benchmarks._fake_server COUNT`` makes COUNT aal2 sessions, serves on a free
loopback port, prints one JSON line (``url``, ``cookie_name``, ``cookies``) and serves
until its standard input closes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kratos_aal.testing import FakeKratos, reserve_port, serve


@contextmanager
def fake_process(count: int) -> Iterator[dict[str, Any]]:
    """Start the fake in a process of its own; yield its JSON line; stop it after."""
    with subprocess.Popen(  # noqa: S603 - this module, run by this interpreter
        [sys.executable, "-m", "benchmarks._fake_server", str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        try:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError("the fake's process exited before it served")
            yield json.loads(line)
        finally:
            process.stdin.close()  # its end: the fake stops serving
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def main(count: int) -> None:
    sock = reserve_port()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    fake = FakeKratos(public_url=url, whoami_required_aal="aal1")
    cookies = [fake.session("aal2").cookie for _ in range(count)]
    with serve(fake, sock=sock):
        line = {"url": url, "cookie_name": fake.cookie_name, "cookies": cookies}
        print(json.dumps(line), flush=True)
        sys.stdin.read()  # until the benchmark closes it


if __name__ == "__main__":
    main(int(sys.argv[1]))
