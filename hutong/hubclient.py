"""Talking to the running hub's HTTP API from the command line."""

from __future__ import annotations

from typing import Any

import httpx

from hutong.config import Settings
from hutong.errors import HutongError

__all__ = ["HubClient"]


class HubClient:
    """GET and POST against ``settings.api_url`` with a token (``token``, else the hub's
    API token), errors as HutongError."""

    def __init__(self, settings: Settings, timeout: float = 60,
                 token: str | None = None) -> None:
        self._url = settings.api_url
        self._verify = settings.api_verify()
        self._headers = {}
        if token is None and settings.api_token is not None:
            token = settings.api_token.get_secret_value()
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._timeout = timeout

    def get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("POST", path, json=body)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("PATCH", path, json=body)

    def post_bytes(self, path: str, body: bytes, content_type: str, **params: Any) -> Any:
        return self._call("POST", path, content=body, params=params,
                          headers={"Content-Type": content_type})

    def get_bytes(self, path: str, accept: str, **params: Any) -> bytes:
        """GET a body that is not JSON (a CDA document), asking for ``accept``."""
        return self._send("GET", path, params=params, headers={"Accept": accept}).content

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._send(method, path, **kwargs).json()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            headers = {**self._headers, **kwargs.pop("headers", {})}
            response = httpx.request(method, f"{self._url}{path}", headers=headers,
                                     timeout=self._timeout, verify=self._verify, **kwargs)
        except httpx.ConnectError:
            raise HutongError(f"no hub answers at {self._url}; start it with `hutong up`"
                              ) from None
        if response.status_code >= 400:
            try:
                body = response.json()
                detail = body.get("detail", response.text)
                if body.get("problems"):
                    detail = f"{detail}: " + "; ".join(body["problems"][:20])
            except ValueError:
                detail = response.text
            raise HutongError(f"the hub answered {response.status_code}: {detail}")
        return response
