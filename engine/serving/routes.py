"""The endpoints of the model server's OpenAI-compatible API, as one APIRouter that
engine/serving/api.py builds the app around: GET /healthz (no key), GET /v1/models[/{id}],
POST /v1/chat/completions and POST /v1/completions.

A /v1 endpoint takes its key and its body through the dependencies of engine/serving/checks.py,
then checks the fields (422), the number of answers asked for (400), the model name (404), the
prompt length (400) and the queue (503). The running Server (engine/serving/worker.py) is
`request.app.state.server`; each request's log record is `request.state.record` (api.RequestLog).
"""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from jinja2 import TemplateError
from starlette.concurrency import run_in_threadpool

from engine.serving.batcher import Busy, Job
from engine.serving.checks import ApiKey, JsonBody, api_key
from engine.serving.responses import ApiError, AsciiJSON, Reply, deliverer
from engine.serving.schemas import BadRequest, ChatRequest, CompletionRequest, clean_text, parse

PRODUCTION = "production"  # a model name that always means the model being served

router = APIRouter(default_response_class=AsciiJSON)


def serving_model(server):
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
    return {"id": engine.model_id, "object": "model", "created": created, "owned_by": "tuneloop"}


@router.get("/healthz")
async def healthz(request: Request):
    server = request.app.state.server
    engine = server.model
    body = {
        "status": "ok" if engine else "loading",
        "model": engine.model_id if engine else None,
        "loading": server.loading,
        "waiting": server.batcher.waiting(),
    }
    return AsciiJSON(body, status_code=200 if engine else 503)


@router.get("/v1/models", dependencies=[Depends(api_key)])
async def list_models(request: Request):
    return {"object": "list", "data": [model_card(serving_model(request.app.state.server))]}


@router.get("/v1/models/{model_id:path}", dependencies=[Depends(api_key)])
async def get_model(request: Request, model_id: str):
    engine = serving_model(request.app.state.server)
    if model_id not in (engine.model_id, PRODUCTION):
        raise ApiError(404, f"The model {model_id!r} does not exist.", code="model_not_found")
    return model_card(engine)


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, key: ApiKey, body: JsonBody):
    return await answer(request, key, parsed(ChatRequest, body), "chat")


@router.post("/v1/completions")
async def completions(request: Request, key: ApiKey, body: JsonBody):
    return await answer(request, key, parsed(CompletionRequest, body), "text")


def parsed(body_type, body: dict):
    """The request's fields (engine/serving/schemas.py), or 422 naming the bad one."""
    try:
        return parse(body_type, body)
    except BadRequest as e:
        raise ApiError(422, str(e), code="invalid_value", param=e.param) from None


def checked_model(server, req, kind: str):
    """(the loaded model, max new tokens) for a request within the server's limits."""
    limits = server.limits
    n_prompts = len(req.prompts()) if kind == "text" else 1
    best_of = getattr(req, "best_of", None) or 1
    generations = n_prompts * req.n * best_of
    if generations > limits.max_generations:
        raise ApiError(
            400,
            f"This request asks for {generations} answers ({n_prompts} prompt(s) × n="
            f"{req.n} × best_of={best_of}); this server generates at most "
            f"{limits.max_generations} per request: send fewer prompts or a smaller n.",
            code="too_many_generations",
            param="n",
        )
    engine = serving_model(server)
    if req.model not in (engine.model_id, PRODUCTION):
        raise ApiError(
            404,
            f"The model {req.model!r} does not exist here: this server serves "
            f"{engine.model_id!r} (the name {PRODUCTION!r} always means the model served).",
            code="model_not_found",
            param="model",
        )
    new_tokens = req.new_tokens() or limits.default_max_tokens
    if new_tokens > limits.max_tokens:
        raise ApiError(
            422,
            f"max_tokens is {new_tokens}, over this server's limit of {limits.max_tokens}.",
            code="invalid_value",
            param="max_tokens",
        )
    return engine, new_tokens


async def prompts_for(engine, req, kind: str, new_tokens: int) -> tuple[list, list]:
    """(the inputs: one message list, or the documents; the token ids of their prompts)."""
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
    return inputs, prompts


async def answer(request: Request, key: dict, req, kind: str):
    """Queue the request's generations on the batcher and answer: whole, or as a stream."""
    server = request.app.state.server
    engine, new_tokens = checked_model(server, req, kind)
    inputs, prompts = await prompts_for(engine, req, kind, new_tokens)
    loop, events = asyncio.get_running_loop(), asyncio.Queue()
    jobs = []
    for prompt in prompts:
        for k in range(req.n):
            seed = None if req.seed is None else (req.seed + k) % 2**64
            deliver = deliverer(loop, events, len(jobs), req.stream)
            jobs.append(
                Job(engine, prompt, new_tokens, req.temperature, req.top_p, seed, req.stops(),
                    deliver)
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
        record["request_text"] = json.dumps(inputs[0]) if kind == "chat" else "\n\n".join(inputs)
    reply.prompt_tokens, reply.include_usage = record["prompt_tokens"], req.include_usage()
    if req.stream:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(reply.stream(), media_type="text/event-stream", headers=headers)
    return AsciiJSON(await reply.collect())
