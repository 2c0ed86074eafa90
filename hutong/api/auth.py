"""Who is calling the API: a bearer token looked up in the users file (`hutong.users`).

Without any user or ``api_token`` configured the API answers this machine only,
as an admin and analyst named ``local`` (a development hub); such a caller has
no clinician role, so it reads no patient's documents.

Every route names the roles it needs (`require`), or is public on purpose (health,
metrics, the schema registry, the console page, the OpenAPI description): a test
enumerates the routes and holds each to one or the other. What a caller changes
(EMPI decisions, code maps, alert acknowledgements, dead-letter retries) goes to the
hash-chained audit log first (`record_action`): an action that cannot be recorded is
not done. A request turned away for its token (none, or one no user holds) is recorded
too, at most 20 at once and one a second per address (`hutong.ratelimit`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import HTTPException, Request

from hutong.audit import AuditLog
from hutong.ratelimit import KeyedLimiter
from hutong.users import Principal, Users

__all__ = ["LOCAL", "SHARED", "acting_as", "caller", "record_action", "require"]

log = logging.getLogger(__name__)

LOCAL = Principal("local", frozenset({"admin", "analyst"}))
#: Identities several people may hold (this machine, the hub's api_token): a decision
#: taken under one names its person in the request instead.
SHARED = frozenset({"local", "api-token"})
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _refused(request: Request, reason: str) -> None:
    """Audit a request turned away for its credentials, unless its address is over its
    rate; the token itself is never recorded."""
    state = request.app.state
    audit: AuditLog | None = getattr(state, "audit", None)
    if audit is None:
        return
    limiter: KeyedLimiter | None = getattr(state, "refusals_audited", None)
    if limiter is None:
        limiter = state.refusals_audited = KeyedLimiter(rate=1.0, burst=20)
    address = request.client.host if request.client else None
    if not limiter.allow(address):
        return
    left_out = limiter.take_denied(address)
    try:
        audit.record("api.refused", address=address, path=request.url.path, reason=reason,
                     **({"left_out": left_out} if left_out else {}))
    except OSError as exc:
        log.error("the audit log cannot be written (%s)", exc.strerror)


def caller(request: Request) -> Principal:
    """The authenticated caller, or 401/403."""
    users: Users = request.app.state.users
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        principal = users.authenticate(token.strip()) if scheme.lower() == "bearer" else None
        if principal is None:
            _refused(request, "the bearer token is not valid")
            raise HTTPException(401, "the bearer token is not valid",
                                headers={"WWW-Authenticate": "Bearer"})
        return principal
    if users.configured:
        _refused(request, "no bearer token")
        raise HTTPException(401, "a bearer token is required",
                            headers={"WWW-Authenticate": "Bearer"})
    if request.client is None or request.client.host not in _LOOPBACK:
        raise HTTPException(403, "requests from other hosts need users (HUTONG_USERS_FILE) "
                                 "or HUTONG_API_TOKEN to be set")
    if not _same_site(request):
        # A web page open in this machine's browser may send requests here, or rebind a
        # name to 127.0.0.1: without a token, only the hub's own pages and tools act.
        raise HTTPException(403, "a cross-site request needs a bearer token")
    return LOCAL


def _same_site(request: Request) -> bool:
    """No ``Origin`` (curl, the CLI) or the hub's own; and a Host that is this machine."""
    host = request.headers.get("host", "").rsplit(":", 1)[0].strip("[]")
    if host and host not in _LOOPBACK:
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]") in _LOOPBACK and \
        origin.split("://", 1)[-1] == request.headers.get("host", "")


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


def record_action(request: Request, action: str, principal: Principal,
                  **details: object) -> None:
    """Append who did ``action`` (and from where) to the audit log, or answer 503.

    ``details`` name what was acted on (ids, counts, outcomes), never a patient's values
    or free text a caller typed. Without an audit log (a bare test app) nothing is kept.
    """
    audit: AuditLog | None = getattr(request.app.state, "audit", None)
    if audit is None:
        return
    try:
        audit.record(action, principal=principal.name,
                     address=request.client.host if request.client else None, **details)
    except OSError as exc:
        log.error("the audit log cannot be written (%s): %s refused", exc.strerror, action)
        raise HTTPException(503, "the audit log cannot be written; nothing was done") from None
