"""A FastAPI app with a public route, an aal1 route, an aal2 route and a fresh-aal2 route.

KRATOS_PUBLIC_URL=http://127.0.0.1:4433 uvicorn examples.fastapi_app:app --port 8000
"""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import Depends, FastAPI

from kratos_aal import AsyncKratosClient, KratosConfig, Session
from kratos_aal.integrations.fastapi import (
    KratosAALMiddleware,
    RequireAAL,
    require_aal1,
    require_aal2,
)

require_fresh_aal2 = RequireAAL("aal2", max_age=300)


def create_app(
    *, config: KratosConfig | None = None, client: AsyncKratosClient | None = None
) -> FastAPI:
    """Build the app; tests pass a client wired to FakeKratos."""
    if client is None and config is None:
        config = KratosConfig.from_env({"KRATOS_PUBLIC_URL": "http://127.0.0.1:4433", **os.environ})
    app = FastAPI(title="kratos-aal FastAPI example")
    app.add_middleware(
        KratosAALMiddleware, **({"client": client} if client else {"config": config})
    )

    @app.get("/")
    async def home() -> dict[str, str]:
        return {"page": "home", "needs": "nothing"}

    @app.get("/account")
    async def account(session: Annotated[Session, Depends(require_aal1)]) -> dict[str, str]:
        return {"page": "account", "aal": session.aal.value}

    @app.get("/api/balance")
    async def balance(session: Annotated[Session, Depends(require_aal2)]) -> dict[str, object]:
        return {"balance": 42, "aal": session.aal.value}

    @app.get("/billing")
    async def billing(session: Annotated[Session, Depends(require_aal2)]) -> dict[str, str]:
        return {"page": "billing", "aal": session.aal.value}

    @app.post("/billing")
    async def update_billing(session: Annotated[Session, Depends(require_aal2)]) -> dict[str, str]:
        return {"page": "billing", "aal": session.aal.value, "status": "saved"}

    @app.get("/billing/transfer")
    async def transfer_form(
        session: Annotated[Session, Depends(require_fresh_aal2)],
    ) -> dict[str, str]:
        return {"page": "transfer", "aal": session.aal.value}

    @app.post("/billing/transfer")
    async def transfer(session: Annotated[Session, Depends(require_fresh_aal2)]) -> dict[str, str]:
        return {"page": "transfer", "aal": session.aal.value, "status": "sent"}

    return app


app = create_app()
