"""What a /v1 request of the model server passes before it is answered, as FastAPI
dependencies (engine/serving/routes.py declares them):

- `api_key`: its key (401; past a few failures from one address, 429 with Retry-After after a
  held delay: engine/serving/limits.py AuthThrottle), then the key's rate limit (429).
- `json_body`: its body, within the size (413, from Content-Length before reading, and while
  reading) and time (408) limits, as a JSON object (400).

Both check against the running Server (engine/serving/worker.py), `request.app.state.server`:

    @router.post("/v1/completions")
    async def completions(request: Request, key: ApiKey, body: JsonBody): ...
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import ClientDisconnect

from engine.serving.responses import ApiError


def too_many_failures(seconds: float) -> ApiError:
    seconds = max(1, math.ceil(seconds))
    return ApiError(
        429,
        f"Too many requests with a wrong or missing API key from this address: retry in "
        f"{seconds} s with a valid key.",
        code="too_many_failed_authentications",
        kind="requests",
        headers={"Retry-After": str(seconds), "WWW-Authenticate": "Bearer"},
    )


async def api_key(request: Request) -> dict:
    """The request's key, or a refusal. Failures are counted per client address
    (engine/serving/limits.py AuthThrottle): past a few, wrong keys get 429 after a
    held delay that doubles, and a flood of them is refused without being checked."""
    server = request.app.state.server
    client, throttle = request.state.client, server.throttle
    locked = throttle.locked_for(client)
    if locked and throttle.saturated(client):
        raise too_many_failures(locked)
    try:
        return check_key(server, request)
    except ApiError as e:
        if e.status != 401:
            raise
        locked = throttle.fail(client)
        if not locked:
            raise
    throttle.hold(client, +1)
    try:  # the refusal waits: a guesser gets few answers, and no CPU is spent meanwhile
        await asyncio.sleep(min(locked, 2.0))
    finally:
        throttle.hold(client, -1)
    raise too_many_failures(throttle.locked_for(client))


def check_key(server, request: Request) -> dict:
    """The key the request's Authorization header names, if it is known, unexpired and within
    its rate limit; recorded in the request's log record."""
    header = (request.headers.get("authorization") or "").strip()
    scheme, _, token = header.partition(" ")
    challenge = {"WWW-Authenticate": "Bearer"}
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "No API key: send it as the header 'Authorization: Bearer tl-…' "
            "(an admin creates keys on the Serve page or with `python -m engine keys`).",
            code="invalid_api_key",
            headers=challenge,
        )
    key = server.find_key(token.strip())
    if key is None:
        raise ApiError(
            401, "Incorrect API key provided.", code="invalid_api_key", headers=challenge
        )
    if key.get("expires") and key["expires"] <= time.time():
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(key["expires"]))
        raise ApiError(
            401,
            f"This API key expired on {when}: ask an admin for a new one.",
            code="expired_api_key",
            headers=challenge,
        )
    request.state.record["key_name"] = key["name"]
    limit = key.get("rate_limit") or server.limits.requests_per_minute
    wait = server.rate.check(key["name"], limit)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise ApiError(
            429,
            f"Rate limit reached: this key may send {limit} requests per minute. "
            f"Retry in {seconds} s.",
            code="rate_limit_exceeded",
            kind="requests",
            headers={"Retry-After": str(seconds)},
        )
    return key


async def json_body(request: Request) -> dict:
    """The request body as a JSON object, read within the server's size and time limits."""
    limits = request.app.state.server.limits
    limit = limits.max_request_bytes
    too_big = ApiError(
        413,
        f"The request body is over this server's limit of {limit:,} bytes.",
        code="request_too_large",
    )
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise too_big if length.isdigit() else ApiError(400, "Bad Content-Length header.")
    chunks, size = [], 0
    timeout = limits.request_timeout_s
    deadline = (
        asyncio.get_running_loop().time() + timeout - (time.monotonic() - request.state.started)
    )  # counted from the request's headers: a trickled body gets 408, then is closed
    try:
        async with asyncio.timeout_at(deadline):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_big
                chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(400, "The client left before sending the whole body.") from None
    except TimeoutError:
        raise ApiError(
            408,
            f"The request body did not arrive within {timeout:g} s: send it at once.",
            code="request_timeout",
            headers={"Connection": "close"},
        ) from None
    request.state.record["body_bytes"] = size
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, RecursionError) as e:
        message = f"The request body is not valid JSON ({str(e)[:200]})."
        raise ApiError(400, message, code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    return body


ApiKey = Annotated[dict, Depends(api_key)]  # the request's key, checked
JsonBody = Annotated[dict, Depends(json_body)]  # the request's body, read within the limits
