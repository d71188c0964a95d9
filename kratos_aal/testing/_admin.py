"""Serve the admin API as Kratos's ``identity/`` and ``session/`` handlers do."""

from __future__ import annotations

import secrets

import httpx

from ._logout import _Logout


class _Admin(_Logout):
    """Answer the admin API."""

    def _admin_identity(self, request: httpx.Request, identity_id: str) -> httpx.Response:
        if self.admin_token is not None:
            expected = f"Bearer {self.admin_token}"
            if not secrets.compare_digest(
                request.headers.get("Authorization", "").encode(), expected.encode()
            ):
                return self._error(401, None, "", "The request could not be authorized")
        identity = self.identities.get(identity_id)
        if identity is None:
            return self._error(
                404, None, "", "Unable to locate the resource", status_text="Not Found"
            )
        included = request.url.params.get_list("include_credential")
        return self._json(200, self._identity_json(identity, credentials=included))
