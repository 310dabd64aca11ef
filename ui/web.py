"""The app's HTTP edge: what a request must be before Streamlit sees it.

`streamlit run streamlit_app.py` finds the `st.App` that streamlit_app.py builds when it is
imported (not when it runs as the frame) and serves it with uvicorn. The App adds, in front of
Streamlit's own routes:

- **The origin gate** (`OriginGate`). Streamlit admits a WebSocket from any localhost origin
  whatever its port, and the browser sends the app's cookies with it, so a page served by any
  other program on this machine could drive the app as the signed-in user. The gate refuses a
  WebSocket, or any request that changes state, whose `Origin` is not the app's own scheme,
  host and port (or one listed in TUNELOOP_ALLOWED_ORIGINS), and any `Host` that a DNS name
  could rebind (see `host_allowed`). It also answers `/_stcore/metrics` with 404: nobody
  signed in reads it.
- **The session cookie, set by the server.** A cookie set by page JavaScript cannot be
  HttpOnly, so any page script could read it. After a login the frame hands the page a
  one-time code (`offer_cookies`); the page posts it to `/_tuneloop/session` and the answer
  sets the session cookie HttpOnly and SameSite=Strict, with a long-lived "known device" cookie
  that lets a correct password through the login backoff (engine/auth.py).
- Two process-wide settings: `clear_cache` messages are refused (no one in the app may clear
  the process's caches: the viewer toolbar offers no such item, and anyone who could open a
  socket could send it), and `pages/` is never run as Streamlit's old pages directory (the
  first request after a start would otherwise list its files instead of the login form).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import secrets
import threading
import time
from urllib.parse import urlsplit

LOG = logging.getLogger("tuneloop.web")
SESSION_ROUTE = "/_tuneloop/session"
LOGOUT_ROUTE = "/_tuneloop/logout"
CODE_TTL = 60  # seconds a one-time cookie code stays valid
MAX_BODY = 4096  # bytes a cookie request may carry
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


# --- origins -----------------------------------------------------------------------------------


def _listed(env: str) -> set[str]:
    return {v.strip().rstrip("/").lower() for v in os.environ.get(env, "").split(",") if v.strip()}


def host_allowed(hostname: str | None) -> bool:
    """A Host a browser may reach the app by: a loopback name, an IP literal (which DNS cannot
    rebind to this machine), the configured server address, or one in TUNELOOP_ALLOWED_HOSTS."""
    if not hostname:
        return False
    hostname = hostname.strip("[]").lower()
    if hostname in _LOOPBACK_NAMES or hostname in _listed("TUNELOOP_ALLOWED_HOSTS"):
        return True
    from streamlit import config

    if hostname == str(config.get_option("server.address") or "").lower():
        return True
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return True


def origin_problem(origin: str | None, host: str | None, secure: bool) -> str | None:
    """Why a browser page at `origin` may not talk to this app reached at `host` (None: it may).
    `secure`: the request came over TLS."""
    if not origin:
        return "the request has no Origin header"
    origin = origin.strip().rstrip("/").lower()
    if origin in _listed("TUNELOOP_ALLOWED_ORIGINS"):
        return None
    parts = urlsplit(origin)
    if parts.scheme != ("https" if secure else "http") or parts.netloc != (host or "").lower():
        return f"origin {origin} is not this app's ({'https' if secure else 'http'}://{host})"
    if not host_allowed(parts.hostname):
        return f"host {parts.hostname} is not one this app answers to (TUNELOOP_ALLOWED_HOSTS)"
    return None


def base_path() -> str:
    from streamlit import config

    return "/" + str(config.get_option("server.baseUrlPath") or "").strip("/")


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _refusal(scope) -> tuple[int, str] | None:
    """(status, message) for a request the app refuses, else None."""
    path = scope["path"].removeprefix(base_path().rstrip("/")) or "/"
    if path.startswith("/_stcore/metrics"):
        return 404, "Not found"
    headers = _headers(scope)
    if not host_allowed(urlsplit("//" + headers.get("host", "")).hostname):
        return 403, "This app does not answer to that host name (TUNELOOP_ALLOWED_HOSTS)."
    # A browser always sends Origin with a WebSocket and with a cross-origin write; our own
    # cookie routes are called by the app's page only. Other clients send none and carry no
    # browser's cookies.
    must_check = scope["type"] == "websocket" or path.startswith("/_tuneloop/")
    if must_check or (scope.get("method") not in _SAFE_METHODS and "origin" in headers):
        secure = scope.get("scheme") in ("https", "wss")
        problem = origin_problem(headers.get("origin"), headers.get("host"), secure)
        if problem:
            return 403, f"Refused: {problem}."
    return None


class OriginGate:
    """ASGI middleware: refuse what `_refusal` names before Streamlit sees the request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        refused = _refusal(scope) if scope["type"] in ("http", "websocket") else None
        if refused is None:
            return await self.app(scope, receive, send)
        status, message = refused
        LOG.warning("refused %s %s: %s", scope["type"], scope["path"], message)
        if scope["type"] == "websocket":  # closing before accepting answers the handshake 403
            return await send({"type": "websocket.close", "code": 1008})
        from starlette.responses import PlainTextResponse

        await PlainTextResponse(message, status_code=status)(scope, receive, send)


# --- the session cookie ------------------------------------------------------------------------

_codes: dict[str, tuple[float, list[tuple[str, str, int]]]] = {}
_codes_lock = threading.Lock()


def offer_cookies(cookies: list[tuple[str, str, int]]) -> str:
    """A one-time code the page exchanges at SESSION_ROUTE for these (name, value, max_age)
    cookies, set HttpOnly by the answer."""
    code = secrets.token_urlsafe(24)
    now = time.time()
    with _codes_lock:
        for old in [c for c, (t, _) in _codes.items() if now - t > CODE_TTL]:
            del _codes[old]
        _codes[code] = (now, cookies)
    return code


def code_pending(code: str) -> bool:
    """Whether the page has yet to exchange this code (and it is still valid)."""
    with _codes_lock:
        offered = _codes.get(code)
    return offered is not None and time.time() - offered[0] <= CODE_TTL


def _take_code(code: str) -> list[tuple[str, str, int]] | None:
    with _codes_lock:
        offered = _codes.pop(code, None)
    if offered is None or time.time() - offered[0] > CODE_TTL:
        return None
    return offered[1]


async def _read_small_body(request) -> bytes | None:
    """The request body, or None once it passes MAX_BODY (checked before it is all read)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return body


def _set_cookie(response, name: str, value: str, max_age: int, secure: bool, path: str):
    response.set_cookie(
        name, value, max_age=max_age, path=path, httponly=True, samesite="strict", secure=secure
    )


async def session_endpoint(request):
    """POST {"code": …}: set the cookies offered under that code (HttpOnly, SameSite=Strict)."""
    from starlette.responses import PlainTextResponse, Response

    body = await _read_small_body(request)
    try:
        code = json.loads(body or b"{}").get("code") if body is not None else None
    except (ValueError, AttributeError):
        code = None
    cookies = _take_code(code) if isinstance(code, str) else None
    if cookies is None:
        return PlainTextResponse("Unknown or expired code: log in again.", status_code=400)
    response = Response(status_code=204)
    secure = request.url.scheme == "https"
    for name, value, max_age in cookies:
        _set_cookie(response, name, value, max_age, secure, base_path())
    return response


async def logout_endpoint(request):
    """POST {"names": […]}: clear those of the app's cookies (the session ended server-side)."""
    from starlette.responses import Response

    body = await _read_small_body(request)
    try:
        names = json.loads(body or b"{}").get("names", []) if body is not None else []
    except (ValueError, AttributeError):
        names = []
    response = Response(status_code=204)
    for name in names if isinstance(names, list) else []:
        if isinstance(name, str) and name.startswith("tuneloop_session_"):
            response.delete_cookie(name, path=base_path(), httponly=True, samesite="strict")
    return response


# --- the App -----------------------------------------------------------------------------------


def _refuse_cache_clearing():
    from streamlit.runtime.app_session import AppSession

    def refuse(self):
        LOG.warning("refused a clear_cache message: nobody may clear the app's caches")

    AppSession._handle_clear_cache_request = refuse


def prepare_process():
    """Process-wide settings, before the first session starts."""
    from streamlit.runtime.pages_manager import PagesManager

    check_plain_http()
    os.umask(0o077)  # the data folder holds documents, password hashes and the cookie secret
    PagesManager.uses_pages_directory = False  # pages/ are st.Page files of the frame, only
    _refuse_cache_clearing()


def routes():
    from starlette.routing import Route

    return [
        Route(SESSION_ROUTE, session_endpoint, methods=["POST"]),
        Route(LOGOUT_ROUTE, logout_endpoint, methods=["POST"]),
    ]


def middleware():
    from starlette.middleware import Middleware

    return [Middleware(OriginGate)]


def plain_http_warning() -> str | None:
    """Why serving as configured is unsafe: other machines reach the app over plain HTTP, so
    passwords and session cookies cross the network in clear. None on loopback or with TLS."""
    from streamlit import config

    address = str(config.get_option("server.address") or "127.0.0.1")
    if address.strip("[]").lower() in _LOOPBACK_NAMES or address.startswith("127."):
        return None
    if config.get_option("server.sslCertFile"):
        return None
    return (
        f"Tuneloop listens on {address} over plain HTTP: anyone on the network can read "
        "passwords and session cookies. Serve it over HTTPS (--server.sslCertFile and "
        "--server.sslKeyFile; docs/security.md: Access from other machines)."
    )


def check_plain_http():
    """Refuse to start with `plain_http_warning`, unless TUNELOOP_ALLOW_PLAIN_HTTP=1: then print
    it loudly (the login page shows it too)."""
    warning = plain_http_warning()
    if warning is None:
        return
    if os.environ.get("TUNELOOP_ALLOW_PLAIN_HTTP") != "1":
        raise SystemExit(
            f"\n  {warning}\n  Refusing to start. (TUNELOOP_ALLOW_PLAIN_HTTP=1 starts it "
            "anyway, with this warning on every login page.)\n"
        )
    print(f"\n  WARNING: {warning}\n", flush=True)


def forwarded_client(peer: str | None, forwarded_for: str | None) -> str:
    """Who is asking, for the login throttle: the nearest X-Forwarded-For entry when the peer
    is a proxy named in TUNELOOP_TRUSTED_PROXIES (anyone else can send the header), else the
    peer itself ("local" when there is none, as in AppTest)."""
    nearest = (forwarded_for or "").split(",")[-1].strip()
    trusted = {p.strip() for p in os.environ.get("TUNELOOP_TRUSTED_PROXIES", "").split(",")}
    return nearest if nearest and peer and peer in trusted else peer or "local"
