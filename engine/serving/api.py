"""The OpenAI-compatible HTTP API of the model server (FastAPI), over a running `Server`
(engine/serving/worker.py). The official `openai` client works against it unchanged:

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="tl-…")
    client.chat.completions.create(model="production", messages=[…])

GET /healthz (no key), GET /v1/models[/{id}], POST /v1/chat/completions (streaming or not),
POST /v1/completions (the prompt is a document: the model summarizes it with the stored prompt
template). A /v1 request passes, in order: its key (401; past a few failures from one address,
429 with Retry-After after a held delay: engine/serving/limits.py), its key's rate limit (429
with Retry-After), the body size (413, from Content-Length before reading, and while reading)
and time (408: headers and body must be in within Limits.request_timeout_s), JSON (400), the
fields (422), the number of answers asked for (400), the model name (404), the prompt length
(400) and the queue (503 with Retry-After). Every error has OpenAI's shape:
{"error": {"message", "type", "param", "code"}}.
Every /v1 request is logged (key name, status, tokens, latency) to the serve folder; prompts and
answers only for keys created with log_texts. One that reaches the model is logged twice: when
generation starts and when it ends, so a kill -9 leaves its start (shown as interrupted).

This module builds the app: the request log, the error shapes and the running Server in
`app.state.server`; engine/serving/routes.py has the endpoints, engine/serving/checks.py the key
and body checks they depend on.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from engine.serving.responses import ApiError, AsciiJSON, error_body
from engine.serving.routes import router


class RequestLog:
    """ASGI middleware: times every /v1 request to its last byte and hands its record (which
    the endpoint fills in: key, model, tokens…) to server.log_request."""

    def __init__(self, app, server):
        self.app, self.server = app, server

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        record = {"received": time.time(), "method": scope["method"], "path": scope["path"][:200]}
        record |= {"status": 500, "key_name": None}
        state = scope.setdefault("state", {})
        state["record"], state["started"] = record, time.monotonic()
        state["client"] = str((scope.get("client") or ("?",))[0])[:64]

        async def logged_send(message):
            if message["type"] == "http.response.start":
                record["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, logged_send)
        finally:
            record["latency_ms"] = round((time.monotonic() - state["started"]) * 1000, 2)
            self.server.log_request(record, state["client"])


def error_response(request: Request, e: ApiError) -> JSONResponse:
    """OpenAI's error shape for a refusal; its message goes into the request's log record."""
    record = request.scope.get("state", {}).get("record")
    if record is not None:
        record["error"] = e.message
    body = error_body(e.message, e.kind, e.code, e.param)
    return AsciiJSON(body, status_code=e.status, headers=e.headers)


async def api_error(request: Request, e: ApiError):
    return error_response(request, e)


async def http_error(request: Request, e: HTTPException):
    message = (
        f"No such endpoint: {request.method} {request.url.path}. This server has GET "
        "/v1/models, POST /v1/chat/completions, POST /v1/completions and GET /healthz."
    )
    return error_response(request, ApiError(e.status_code, message, code="not_found"))


async def server_error(request: Request, e: Exception):
    message = f"Internal server error ({type(e).__name__}); the server log has the details."
    return error_response(request, ApiError(500, message))


def create_app(server) -> FastAPI:
    """The API app over a running Server (engine/serving/worker.py)."""
    app = FastAPI(
        title="Tuneloop model server",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        default_response_class=AsciiJSON,
    )
    app.state.server = server
    app.add_middleware(RequestLog, server=server)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, server_error)
    app.include_router(router)
    return app
