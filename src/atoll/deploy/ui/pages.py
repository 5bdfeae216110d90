"""``/ui``: the dashboard's page and assets, straight from the package (no CDN, works offline), and
sign-in / sign-out with the admin token.

The page and its assets hold no data and are served to anyone; everything the page shows comes
from the management API, which needs the admin token or the session cookie set here.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from atoll.client_json import parse_json
from atoll.deploy.errors import BadRequest, ManagementError, limited
from atoll.deploy.ui.context import dashboard_of
from atoll.deploy.ui.signin import (
    clear_cookie_header,
    cookie_value,
    same_origin_problem,
    set_cookie_header,
)

ASSETS = Path(__file__).parent / "assets"
#: The files the page is made of, and their types; nothing else under /ui/assets is served.
ASSET_TYPES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
               "charts.js": "text/javascript; charset=utf-8", "icon.svg": "image/svg+xml"}
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Same-origin requests keep their Referer, which the cookie check reads when there is no Origin.
    "Referrer-Policy": "same-origin",
}
MAX_SIGNIN_BODY = 4096


@cache
def _asset(name: str) -> tuple[bytes, str]:
    data = (ASSETS / name).read_bytes()
    return data, '"' + hashlib.sha256(data).hexdigest()[:16] + '"'


def _serve(request: Request, name: str, media_type: str) -> Response:
    data, etag = _asset(name)
    headers = {**PAGE_HEADERS, "ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


async def page(request: Request) -> Response:
    return _serve(request, "index.html", "text/html; charset=utf-8")


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    media_type = ASSET_TYPES.get(name)
    if media_type is None:
        raise ManagementError(f"no such dashboard asset: {name}", error_code="NOT_FOUND", status=404)
    return _serve(request, name, media_type)


def _client(request: Request) -> str:
    return request.client.host if request.client else "-"


async def sign_in(request: Request) -> JSONResponse:
    """``{"token": "<admin token>"}`` -> the session cookie. Same origin only; failures are throttled."""
    dash = dashboard_of(request)
    if not dash.admin_token.enabled:
        raise ManagementError("this server has no admin token, so there is nothing to sign in with: the "
                              "management API is open (loopback only)", error_code="NO_ADMIN_TOKEN", status=409)
    problem = same_origin_problem(request.scope)
    if problem is not None:
        raise ManagementError(problem, error_code="FORBIDDEN_ORIGIN", status=403)
    if dash.sessions.throttled(_client(request)):
        raise ManagementError("too many failed sign-ins: wait a minute", error_code="RATE_LIMITED", status=429)
    try:
        body = parse_json(await limited(request, MAX_SIGNIN_BODY).body() or b"{}")
    except ValueError as exc:
        raise BadRequest("expected a JSON body {\"token\": \"<admin token>\"}") from exc
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise BadRequest("missing 'token' (the admin token)")
    if dash.admin_token.problem(f"Bearer {token.strip()}") is not None:
        dash.sessions.failed(_client(request))
        raise ManagementError("invalid admin token", error_code="UNAUTHORIZED", status=401)
    session = dash.sessions.create()
    secure = request.url.scheme == "https"
    return JSONResponse({"signed_in": True}, headers={"Set-Cookie": set_cookie_header(session, secure=secure),
                                                      "Cache-Control": "no-store"})


async def sign_out(request: Request) -> JSONResponse:
    dashboard_of(request).sessions.revoke(cookie_value(request.scope))
    secure = request.url.scheme == "https"
    return JSONResponse({"signed_in": False}, headers={"Set-Cookie": clear_cookie_header(secure=secure)})


def routes() -> list[Route]:
    return [
        Route("/ui", page, methods=["GET", "HEAD"]),
        Route("/ui/", page, methods=["GET", "HEAD"]),
        Route("/ui/assets/{name}", asset, methods=["GET", "HEAD"]),
        Route("/ui/session", sign_in, methods=["POST"]),
        Route("/ui/session", sign_out, methods=["DELETE"]),
    ]

