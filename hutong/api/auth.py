"""Who is calling the API: a bearer token looked up in the users file (`hutong.users`).

Without any user or ``api_token`` configured the API answers this machine only,
as an admin and analyst named ``local`` (a development hub); such a caller has
no clinician role, so it reads no patient's documents.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import HTTPException, Request

from hutong.users import Principal, Users

__all__ = ["LOCAL", "SHARED", "acting_as", "caller", "require"]

LOCAL = Principal("local", frozenset({"admin", "analyst"}))
#: Identities several people may hold (this machine, the hub's api_token): a decision
#: taken under one names its person in the request instead.
SHARED = frozenset({"local", "api-token"})
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def caller(request: Request) -> Principal:
    """The authenticated caller, or 401/403."""
    users: Users = request.app.state.users
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        principal = users.authenticate(token.strip()) if scheme.lower() == "bearer" else None
        if principal is None:
            raise HTTPException(401, "the bearer token is not valid",
                                headers={"WWW-Authenticate": "Bearer"})
        return principal
    if users.configured:
        raise HTTPException(401, "a bearer token is required",
                            headers={"WWW-Authenticate": "Bearer"})
    if request.client is None or request.client.host not in _LOOPBACK:
        raise HTTPException(403, "requests from other hosts need users (HUTONG_USERS_FILE) "
                                 "or HUTONG_API_TOKEN to be set")
    return LOCAL


def require(*roles: str) -> Callable[[Request], Principal]:
    """A dependency admitting callers holding at least one of ``roles``."""

    def check(request: Request) -> Principal:
        principal = caller(request)
        if not any(principal.has(role) for role in roles):
            raise HTTPException(403, f"this needs the role {' or '.join(roles)}")
        return principal

    return check


def acting_as(principal: Principal, named: str) -> str:
    """Who a decision is recorded as: the caller's own name; under a shared identity,
    the person the request names. A personal token may not decide for someone else."""
    if principal.name in SHARED:
        return named
    if named != principal.name:
        raise HTTPException(403, f"a decision is recorded under your own name "
                                 f"({principal.name}), not another")
    return principal.name
