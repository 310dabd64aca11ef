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
"""

from __future__ import annotations

import asyncio
import json
import math
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from jinja2 import TemplateError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from engine.serving.batcher import Busy, Job
from engine.serving.responses import ApiError, AsciiJSON, Reply, deliverer, error_body
from engine.serving.schemas import BadRequest, ChatRequest, CompletionRequest, clean_text, parse

PRODUCTION = "production"  # a model name that always means the model being served


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


def create_app(server) -> FastAPI:
    app = FastAPI(
        title="Tuneloop model server",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        default_response_class=AsciiJSON,
    )
    app.add_middleware(RequestLog, server=server)

    def error_response(request: Request, e: ApiError) -> JSONResponse:
        record = request.scope.get("state", {}).get("record")
        if record is not None:
            record["error"] = e.message
        body = error_body(e.message, e.kind, e.code, e.param)
        return AsciiJSON(body, status_code=e.status, headers=e.headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError):
        return error_response(request, e)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException):
        message = (
            f"No such endpoint: {request.method} {request.url.path}. This server has GET "
            "/v1/models, POST /v1/chat/completions, POST /v1/completions and GET /healthz."
        )
        return error_response(request, ApiError(e.status_code, message, code="not_found"))

    @app.exception_handler(Exception)
    async def server_error(request: Request, e: Exception):
        message = f"Internal server error ({type(e).__name__}); the server log has the details."
        return error_response(request, ApiError(500, message))

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

    async def authenticate(request: Request) -> dict:
        """The request's key, or a refusal. Failures are counted per client address
        (engine/serving/limits.py AuthThrottle): past a few, wrong keys get 429 after a
        held delay that doubles, and a flood of them is refused without being checked."""
        client, throttle = request.state.client, server.throttle
        locked = throttle.locked_for(client)
        if locked and throttle.saturated(client):
            raise too_many_failures(locked)
        try:
            return check_key(request)
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

    def check_key(request: Request) -> dict:
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

    def serving_model():
        engine = server.model
        if engine is None:
            raise ApiError(
                503,
                "The model is still loading: retry in a few seconds.",
                code="model_loading",
                headers={"Retry-After": "5"},
            )
        return engine

    def model_card(engine) -> dict:
        created = int(engine.spec.get("published") or 0)
        return {
            "id": engine.model_id,
            "object": "model",
            "created": created,
            "owned_by": "tuneloop",
        }

    @app.get("/healthz")
    async def healthz():
        engine = server.model
        body = {
            "status": "ok" if engine else "loading",
            "model": engine.model_id if engine else None,
            "loading": server.loading,
            "waiting": server.batcher.waiting(),
        }
        return AsciiJSON(body, status_code=200 if engine else 503)

    @app.get("/v1/models")
    async def list_models(request: Request):
        await authenticate(request)
        return {"object": "list", "data": [model_card(serving_model())]}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(request: Request, model_id: str):
        await authenticate(request)
        engine = serving_model()
        if model_id not in (engine.model_id, PRODUCTION):
            raise ApiError(404, f"The model {model_id!r} does not exist.", code="model_not_found")
        return model_card(engine)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await answer(request, ChatRequest, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await answer(request, CompletionRequest, "text")

    async def read_body(request: Request) -> dict:
        limit = server.limits.max_request_bytes
        too_big = ApiError(
            413,
            f"The request body is over this server's limit of {limit:,} bytes.",
            code="request_too_large",
        )
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise too_big if length.isdigit() else ApiError(400, "Bad Content-Length header.")
        chunks, size = [], 0
        timeout = server.limits.request_timeout_s
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

    async def answer(request: Request, body_type, kind: str):
        key = await authenticate(request)
        try:
            req = parse(body_type, await read_body(request))
        except BadRequest as e:
            raise ApiError(422, str(e), code="invalid_value", param=e.param) from None
        n_prompts = len(req.prompts()) if kind == "text" else 1
        best_of = getattr(req, "best_of", None) or 1
        generations = n_prompts * req.n * best_of
        if generations > server.limits.max_generations:
            raise ApiError(
                400,
                f"This request asks for {generations} answers ({n_prompts} prompt(s) × n="
                f"{req.n} × best_of={best_of}); this server generates at most "
                f"{server.limits.max_generations} per request: send fewer prompts or a "
                "smaller n.",
                code="too_many_generations",
                param="n",
            )
        engine = serving_model()
        if req.model not in (engine.model_id, PRODUCTION):
            raise ApiError(
                404,
                f"The model {req.model!r} does not exist here: this server serves "
                f"{engine.model_id!r} (the name {PRODUCTION!r} always means the model served).",
                code="model_not_found",
                param="model",
            )
        limits = server.limits
        new_tokens = req.new_tokens() or limits.default_max_tokens
        if new_tokens > limits.max_tokens:
            raise ApiError(
                422,
                f"max_tokens is {new_tokens}, over this server's limit of {limits.max_tokens}.",
                code="invalid_value",
                param="max_tokens",
            )
        if kind == "chat":
            inputs = [[m.as_dict() for m in req.messages]]
            build, param = engine.chat_prompt, "messages"
        else:
            inputs = [clean_text(p) for p in req.prompts()]
            build, param = engine.summary_prompt, "prompt"
        try:
            prompts = await run_in_threadpool(lambda: [build(x, new_tokens) for x in inputs])
        except ValueError as e:
            raise ApiError(400, str(e), code="context_length_exceeded", param=param) from None
        except TemplateError as e:
            message = f"The model's chat template cannot take these messages: {e}"
            raise ApiError(400, message, param=param) from None
        loop, events = asyncio.get_running_loop(), asyncio.Queue()
        jobs = []
        for prompt in prompts:
            for k in range(req.n):
                seed = None if req.seed is None else (req.seed + k) % 2**64
                deliver = deliverer(loop, events, len(jobs), req.stream)
                jobs.append(
                    Job(engine, prompt, new_tokens, req.temperature, req.top_p, seed,
                        req.stops(), deliver)
                )  # fmt: skip
        record = request.state.record
        reply = Reply(kind, engine.model_id, jobs, events, record, request.state.started)
        record.update(model_id=engine.model_id, prompt_tokens=sum(len(p) for p in prompts))
        record.update(id=reply.id, generations=len(jobs), max_tokens=new_tokens)
        await run_in_threadpool(server.log_start, record)  # before generation: kill -9 proof
        try:
            server.batcher.submit(jobs)
        except Busy as e:
            raise ApiError(
                503, f"The server is busy ({e}): retry shortly.", code="overloaded",
                headers={"Retry-After": "2"},
            ) from None  # fmt: skip
        record["log_texts"] = bool(key.get("log_texts"))
        if record["log_texts"]:
            record["request_text"] = (
                json.dumps(inputs[0]) if kind == "chat" else "\n\n".join(inputs)
            )
        reply.prompt_tokens, reply.include_usage = record["prompt_tokens"], req.include_usage()
        if req.stream:
            headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            return StreamingResponse(
                reply.stream(), media_type="text/event-stream", headers=headers
            )
        return AsciiJSON(await reply.collect())

    return app
