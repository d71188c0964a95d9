"""One harness over the three example apps: Starlette, FastAPI and Flask, in process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from kratos_aal.testing import FakeKratos

FRAMEWORKS = ["starlette", "fastapi", "flask"]


@dataclass
class Reply:
    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def location(self) -> str:
        return str(self.headers.get("location", ""))


class Harness:
    """Send requests to one example app and read the replies the same way for all."""

    def __init__(self, framework: str, fake: FakeKratos, **config: Any) -> None:
        self.framework = framework
        self.fake = fake
        if framework == "flask":
            from examples.flask_app import create_app as create_flask

            # use_cookies=False: the tests set Cookie headers themselves, as browsers do.
            self.flask = create_flask(client=fake.client(**config)).test_client(use_cookies=False)
            self._async: httpx.AsyncClient | None = None
        else:
            from examples import fastapi_app, starlette_app

            module: Any = starlette_app if framework == "starlette" else fastapi_app
            self.app = module.create_app(client=fake.async_client(**config))
            self._async = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.app), base_url="http://testserver"
            )

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Reply:
        if self._async is None:
            # Header bytes beyond ASCII, as a WSGI server would hand them on (latin-1).
            headers = {k: v.encode().decode("latin-1") for k, v in (headers or {}).items()}
            response = self.flask.open(
                path, method=method, headers=headers or {}, base_url="http://testserver", **kwargs
            )
            return Reply(
                response.status_code, httpx.Headers(list(response.headers.items())), response.data
            )
        raw = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        reply = await self._async.request(method, path, headers=raw, **kwargs)
        return Reply(reply.status_code, reply.headers, reply.content)

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        return await self.request("GET", path, headers)

    async def close(self) -> None:
        if self._async is not None:
            await self._async.aclose()


@pytest.fixture(params=FRAMEWORKS)
async def make_app(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(fake: FakeKratos, **config: Any) -> Harness:
        made.append(Harness(request.param, fake, **config))
        return made[-1]

    yield make
    for harness in made:
        await harness.close()


@pytest.fixture
def fake() -> FakeKratos:
    return FakeKratos(whoami_required_aal="aal1")


@pytest.fixture
def app(make_app: Callable[..., Harness], fake: FakeKratos) -> Harness:
    return make_app(fake)
