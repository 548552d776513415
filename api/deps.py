"""What routes depend on: the service, and who is asking (API key, scope, rate limit). Async, though nothing
here awaits: FastAPI runs a plain ``def`` dependency on the thread pool, a hand-off per request that was
~10 % of a search's GIL time under load; hashing a key and the rate limiter take microseconds."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.auth import Principal, retry_after_header
from api.service import Service
from core.collection import collection_path, missing_collection

_bearer = HTTPBearer(auto_error=False, description="An API key from ASSISTANT_API_KEYS")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key from ASSISTANT_API_KEYS")


def service_of(request: Request) -> Service:
    return request.app.state.service


async def authenticate(
    request: Request, bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)], key: Annotated[str | None, Depends(_header)]
) -> Principal:
    service = service_of(request)
    if service.keys.enabled:
        presented = (bearer.credentials if bearer else None) or key
        if not presented:
            raise HTTPException(
                401, "an API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'", headers={"WWW-Authenticate": "Bearer"}
            )
        principal = service.keys.verify(presented)
        if principal is None:
            raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
    else:  # no keys configured: `assistant serve` then binds to loopback only
        principal = Principal(f"anonymous:{request.client.host if request.client else 'unknown'}", admin=True)
    wait = service.limiter.take(principal.id)
    if wait > 0:
        service.metrics.rate_limited.inc()
        raise HTTPException(
            429,
            f"rate limit of {service.settings.api.rate_limit_per_minute} requests a minute exceeded",
            headers={"Retry-After": retry_after_header(wait)},
        )
    return principal


NO_ADMIN = "this key lacks the admin scope (add ':admin' to it in ASSISTANT_API_KEYS)"


async def require_admin(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    """Admin on everything (/metrics, whose labels name collections)."""
    if not principal.admin:
        raise HTTPException(403, NO_ADMIN)
    if not principal.full_admin:
        raise HTTPException(403, "this key sees only some collections (collections= in ASSISTANT_API_KEYS); this needs one that sees all")
    return principal


async def require_some_admin(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    """Admin on at least one collection: checked before an upload is read; the route checks its collection."""
    if not principal.admin_somewhere:
        raise HTTPException(403, NO_ADMIN)
    return principal


def check_collection(request: Request, principal: Principal, name: str) -> None:
    """A collection this key may not see is reported exactly as one that does not exist (404, same words)."""
    if not principal.sees(name):
        raise missing_collection(collection_path(service_of(request).settings.index_dir, name))


def check_admin_on(request: Request, principal: Principal, name: str) -> None:
    """404 as above for a collection out of the key's sight; 403 for a visible one it does not administer."""
    check_collection(request, principal, name)
    if not principal.administers(name):
        raise HTTPException(403, f"this key lacks the admin scope on collection {name!r} (':admin=NAMES' in ASSISTANT_API_KEYS)")


Authed = Annotated[Principal, Depends(authenticate)]
Admin = Annotated[Principal, Depends(require_admin)]
SomeAdmin = Annotated[Principal, Depends(require_some_admin)]
