from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

# Imported here, in the main thread: hypothesis's pytest plugin otherwise imports it
# lazily, which can happen inside Playwright's greenlet, where CPython 3.11's parser
# trips over the greenlet's recursion depth ("AST constructor recursion depth mismatch").
import hypothesis  # noqa: F401
import pytest

from kratos_aal import AsyncKratosClient, KratosClient
from kratos_aal.testing import FakeKratos

APP = "http://testserver/billing"


class Driver:
    """One interface over KratosClient and AsyncKratosClient: every test runs on both."""

    def __init__(self, client: KratosClient | AsyncKratosClient, mode: str) -> None:
        self.client = client
        self.mode = mode

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.client, name)(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    async def check(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("check", *args, **kwargs)

    async def whoami(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("whoami", *args, **kwargs)

    def invalidate(self, *args: Any) -> None:
        self.client.invalidate(*args)

    async def close(self) -> None:
        if isinstance(self.client, AsyncKratosClient):
            await self.client.aclose()
            await self.client._injected.aclose()  # type: ignore[union-attr]
        else:
            self.client.close()
            self.client._http.close()


@pytest.fixture
def fake() -> FakeKratos:
    """Kratos configured as the docs recommend for per-route step-up."""
    return FakeKratos(whoami_required_aal="aal1")


@pytest.fixture(params=["sync", "async"])
async def make_driver(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    drivers: list[Driver] = []

    def make(fake: FakeKratos, **config: Any) -> Driver:
        client = fake.client(**config) if request.param == "sync" else fake.async_client(**config)
        drivers.append(Driver(client, request.param))
        return drivers[-1]

    yield make
    for driver in drivers:
        await driver.close()


@pytest.fixture
def driver(make_driver: Any, fake: FakeKratos) -> Driver:
    return make_driver(fake)  # type: ignore[no-any-return]
