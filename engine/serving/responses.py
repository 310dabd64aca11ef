"""OpenAI's response shapes for the API server: whole bodies, server-sent event chunks (with
usage in the last chunk when `stream_options.include_usage`, as OpenAI does) and errors
({"error": {"message", "type", "param", "code"}}), built from a request's generation jobs.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from fastapi.responses import JSONResponse


class AsciiJSON(JSONResponse):
    """JSON in ASCII: an error that names a field from the request stays encodable even when
    the request carried lone surrogates (which UTF-8 cannot encode)."""

    def render(self, content) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


class ApiError(Exception):
    """A refusal for the client: HTTP status, message, OpenAI error type and code."""

    def __init__(self, status, message, code=None, param=None, kind=None, headers=None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.kind = kind or ("server_error" if status >= 500 else "invalid_request_error")
        self.headers = headers


def error_body(message: str, kind: str, code=None, param=None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def deliverer(loop, events: asyncio.Queue, index: int, stream: bool):
    """What the batcher thread calls with a job's news: it lands on the request's queue (new
    text only for a stream: a whole answer is read from the job once it is done)."""

    def deliver(kind, payload):
        if kind == "text" and not stream:
            return
        try:
            loop.call_soon_threadsafe(events.put_nowait, (index, kind, payload))
        except RuntimeError:  # the event loop closed: the server is stopping
            pass

    return deliver


class Reply:
    """One request's answer, from the jobs' events: a whole JSON body or a stream of chunks."""

    def __init__(self, kind, model_id, jobs, events, record, started):
        self.kind, self.model_id, self.jobs, self.events = kind, model_id, jobs, events
        self.record, self.started = record, started
        self.id = ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())
        self.prompt_tokens, self.include_usage = 0, False

    def usage(self) -> dict:
        completion = sum(len(job.tokens) for job in self.jobs)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }

    def choice(self, index: int, text: str, reason: str | None, whole: bool = False) -> dict:
        if self.kind == "text":
            return {"index": index, "text": text, "logprobs": None, "finish_reason": reason}
        if whole:
            message = {"role": "assistant", "content": text, "refusal": None}
            return {"index": index, "message": message, "logprobs": None, "finish_reason": reason}
        delta = {"content": text} if text else {}
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}

    def body(self, choices: list[dict], whole: bool = False, usage=None) -> dict:
        kind = "chat.completion" if self.kind == "chat" else "text_completion"
        body = {
            "id": self.id,
            "object": kind if whole or self.kind == "text" else "chat.completion.chunk",
            "created": self.created,
            "model": self.model_id,
            "system_fingerprint": None,
            "choices": choices,
        }
        if whole or self.include_usage:
            body["usage"] = usage
        return body

    async def events_until_done(self):
        """(index, kind, payload) of every job until each has finished."""
        open_jobs = len(self.jobs)
        while open_jobs:
            index, kind, payload = await self.events.get()
            if kind == "error":
                raise ApiError(500, payload, code="generation_failed")
            open_jobs -= kind == "done"
            yield index, kind, payload

    async def collect(self) -> dict:
        try:
            async for _ in self.events_until_done():
                pass
        finally:
            self.close()
        choices = [
            self.choice(i, job.text, _reason(job), whole=True) for i, job in enumerate(self.jobs)
        ]
        return self.body(choices, whole=True, usage=self.usage())

    async def stream(self):
        def sse(data: dict) -> str:
            return f"data: {json.dumps(data)}\n\n"

        try:
            if self.kind == "chat":
                starts = [
                    {"index": i, "delta": {"role": "assistant", "content": ""},
                     "logprobs": None, "finish_reason": None}
                    for i in range(len(self.jobs))
                ]  # fmt: skip
                yield sse(self.body(starts))
            async for index, kind, payload in self.events_until_done():
                if kind == "text":
                    yield sse(self.body([self.choice(index, payload, None)]))
                else:
                    reason = _reason(self.jobs[index])
                    yield sse(self.body([self.choice(index, "", reason)]))
            if self.include_usage:
                yield sse(self.body([], usage=self.usage()))
            yield "data: [DONE]\n\n"
        except ApiError as e:
            self.record["error"] = e.message
            yield sse(error_body(e.message, e.kind, e.code))
        finally:
            self.close()

    def close(self):
        """Stop what still runs (the client left) and complete the log record."""
        for job in self.jobs:
            job.cancelled.set()
        record, jobs = self.record, self.jobs
        record["completion_tokens"] = sum(len(job.tokens) for job in jobs)
        record["finish_reason"] = ",".join(
            sorted({job.finish_reason or "cancelled" for job in jobs})
        )
        firsts = [job.first_token_at for job in jobs if job.first_token_at is not None]
        if firsts:
            record["first_token_ms"] = round((min(firsts) - self.started) * 1000, 2)
        if record.get("log_texts"):
            texts = [job.text for job in jobs]
            record["response_text"] = texts[0] if len(texts) == 1 else json.dumps(texts)


def _reason(job) -> str:
    """OpenAI's finish reasons: stop or length."""
    return "length" if job.finish_reason == "length" else "stop"
