"""The Channels app the long-lived connection tests serve under Daphne.

``/live/ws`` needs aal1, ``/live/ws-fresh`` aal1 within ``LIVE_MAX_AGE`` seconds; both
push a counter. ``/live/user`` sends who ``scope["user"]`` and ``scope["kratos_session"]``
say, then closes.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402

_failed: list[BaseException] = []


def _migrate() -> None:
    try:
        call_command("migrate", verbosity=0)
    except BaseException as error:  # raised again below, in the importing thread
        _failed.append(error)
    finally:
        connections.close_all()


# On a thread of its own: uvicorn 0.30 imports the app inside its event loop, where Django
# refuses database work (SynchronousOnlyOperation).
_migration = threading.Thread(target=_migrate, name="migrate")
_migration.start()
_migration.join()
if _failed:
    raise _failed[0]

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from kratos_aal.integrations.channels import KratosAuthMiddleware, require_aal  # noqa: E402

urlpatterns: list[Any] = []
TICK = 0.1


class Counter(AsyncWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        await self.accept()
        self.ticker = asyncio.ensure_future(self.tick())

    async def tick(self) -> None:
        number = 0
        while True:
            try:
                await self.send(text_data=str(number))
            except (OSError, RuntimeError):  # ended (by kratos-aal, or the client left)
                return
            number += 1
            await asyncio.sleep(TICK)

    async def disconnect(self, code: int) -> None:
        self.ticker.cancel()


class Who(AsyncWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        await self.accept()
        session = self.scope.get("kratos_session")
        user = self.scope.get("user")
        who = f"{session.id if session else None} {type(user).__name__ if user else None}"
        await self.send(text_data=who)
        await self.close()


MAX_AGE = float(os.environ.get("LIVE_MAX_AGE", "3600"))

application = ProtocolTypeRouter(
    {
        "websocket": KratosAuthMiddleware(
            URLRouter(
                [
                    path("live/ws", require_aal("aal1")(Counter).as_asgi()),
                    path("live/ws-fresh", require_aal("aal1", max_age=MAX_AGE)(Counter).as_asgi()),
                    path("live/user", Who.as_asgi()),
                ]
            )
        ),
    }
)


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


application.application_mapping["http"] = _ok
