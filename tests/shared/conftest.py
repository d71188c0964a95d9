"""A real redis-server for the shared-cache tests: a free loopback port, no persistence.

Outside CI the tests that need it skip with a one-line hint; under ``CI=true`` they fail
when it is missing (``.ci/run`` installs Debian's redis-server).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from kratos_aal.testing._redis import RedisProcess, redis_binary, running_redis

REDIS_SERVER = redis_binary() or "/usr/bin/redis-server"
SECRET = "a-test-secret-of-enough-length"


class RedisServer(RedisProcess):
    """One redis-server process that a test can stop, pause, resume and start again."""

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if not os.path.exists(REDIS_SERVER):
        if os.environ.get("CI") == "true":
            pytest.fail(f"redis-server is missing at {REDIS_SERVER}: .ci/run installs it")
        pytest.skip("redis-server is missing: apt-get install redis-server")
    with running_redis(REDIS_SERVER, RedisServer) as server:
        assert isinstance(server, RedisServer)
        yield server
