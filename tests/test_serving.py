"""The model server: the official `openai` client against a live server process (a tiny random
model), API keys (missing, wrong, revoked, expired), rate limits, size limits and malformed
requests, a hot swap under load, a fuzz of the API's inputs, HTTPS, the request log in the
store, the CLI and the Serve page; and one check on the real default model (slow)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from openai import OpenAI

import store
from engine.auth import CONSOLE
from engine.jobs.runfolder import read_json
from engine.models.registry import PRODUCTION, register_base
from engine.serving import keys, runs
from engine.serving.batcher import Batcher, Job, LoadedModel, run_batch
from engine.serving.folder import KEYS_FILE, LIMITS_FILE, LOG_FILE, MODEL_FILE, Limits
from engine.serving.worker import RateLimiter, serve
from store import serving as serving_store
from store import splits as settings_store
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # a real API server with a model in every test (fast loop: out)

# batch_wait_ms 50: requests sent together by the test's threads share a batch.
LIMITS = Limits(
    max_request_bytes=20_000,
    max_tokens=512,
    default_max_tokens=8,
    requests_per_minute=10_000,
    batch_wait_ms=50,
    auth_failures_free=1000,  # the module's tests share 127.0.0.1: keep wrong keys at 401
)


def varied_model(source: Path, folder: Path, seed: int) -> Path:
    """conftest's tiny model re-drawn with wider weights (initializer_range 0.1): the default
    0.02 answers every prompt with the same token, which would make comparisons vacuous."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    config = AutoConfig.from_pretrained(source)
    config.initializer_range = 0.1
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


def wait_until(check, timeout=60.0, every=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"gave up after {timeout} s")


def call(url, method, path, body=None, key=None, headers=None, raw=None, context=None):
    """(status, headers, parsed JSON or the raw text) of one request, with the stdlib."""
    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    kwargs = {"context": context} if context else {}
    conn = cls(parts.hostname, parts.port, timeout=60, **kwargs)
    payload = raw if raw is not None else None if body is None else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if key:
        all_headers["Authorization"] = f"Bearer {key}"
    conn.request(method, path, body=payload, headers=all_headers)
    response = conn.getresponse()
    data = response.read().decode()
    conn.close()
    try:
        data = json.loads(data)
    except ValueError:
        pass
    return response.status, dict(response.getheaders()), data


@pytest.fixture(scope="module")
def served(tiny_model, tmp_path_factory):
    """A live server started by the app's side (its own process) on a free port, serving a
    tiny model as the production model, with a few keys."""
    home = tmp_path_factory.mktemp("serve-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNELOOP_HOME", str(home))
        con = store.connect(":memory:")
        model_a = varied_model(tiny_model, tmp_path_factory.mktemp("tiny-a"), seed=1)
        model_b = varied_model(tiny_model, tmp_path_factory.mktemp("tiny-b"), seed=2)
        register_base(con, "tiny-a", str(model_a))
        register_base(con, "tiny-b", str(model_b))
        settings_store.set_setting(con, PRODUCTION, "tiny-a")
        runs.write_folder(con, LIMITS)
        made = {
            "alice": keys.create_key(con, CONSOLE, "alice", log_texts=True),
            "bob": keys.create_key(con, CONSOLE, "bob"),
            "fuzz": keys.create_key(con, CONSOLE, "fuzz"),
            "slow": keys.create_key(con, CONSOLE, "slow", rate_limit=2),
        }
        runs.start_server(con, CONSOLE, port=0)
        try:
            state = wait_until(
                lambda: (s := runs.server_state()).state in ("ready", "failed", "stopped") and s,
                timeout=120,
            )
            assert state.state == "ready", state
            yield {"con": con, "url": state.url, "keys": made, "folder": home / "serve"}
        finally:
            runs.stop_server(con, CONSOLE)
        assert not runs.server_state().running


def client(served, key="alice") -> OpenAI:
    return OpenAI(base_url=served["url"] + "/v1", api_key=served["keys"][key], max_retries=0)


def chat(text="Summarize: the committee met on Tuesday.", **kwargs) -> dict:
    return {"model": "production", "messages": [{"role": "user", "content": text}]} | kwargs


@pytest.mark.slow
def test_openai_client_lists_chats_streams_and_completes(served):
    c = client(served)
    assert [m.id for m in c.models.list()] == ["tiny-a"]
    assert c.models.retrieve("production").id == "tiny-a"
    messages = [{"role": "user", "content": "Summarize: the committee met on Tuesday."}]
    whole = c.chat.completions.create(
        model="tiny-a", messages=messages, max_tokens=12, temperature=0
    )
    assert whole.model == "tiny-a" and whole.object == "chat.completion"
    answer = whole.choices[0]
    assert answer.message.role == "assistant" and answer.finish_reason in ("stop", "length")
    assert 0 < whole.usage.completion_tokens <= 12 and whole.usage.prompt_tokens > 10
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens

    stream = c.chat.completions.create(
        model="production", messages=messages, max_tokens=12, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == answer.message.content  # greedy: the stream says what the whole reply said
    assert len([ch for ch in chunks if ch.choices and ch.choices[0].delta.content]) > 1
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == answer.finish_reason

    done = c.completions.create(
        model="production", prompt="The council approved the budget.", max_tokens=6, temperature=0
    )
    assert done.object == "text_completion" and done.choices[0].finish_reason in ("stop", "length")
    assert 0 < done.usage.completion_tokens <= 6
    # The prompt is a document that the stored template wraps: far more tokens than its words.
    assert done.usage.prompt_tokens > 30

    sampled = [
        c.chat.completions.create(
            model="production", messages=messages, max_tokens=10, temperature=1.0, seed=7
        )
        .choices[0]
        .message.content
        for _ in range(2)
    ]
    assert sampled[0] == sampled[1]  # a seeded sampled request is reproducible

    stopped = c.chat.completions.create(
        model="production", messages=messages, max_tokens=12, temperature=0,
        stop=[answer.message.content[2:4]],
    )  # fmt: skip
    full, stop = answer.message.content, answer.message.content[2:4]
    if stop:  # the answer is cut where the stop string first appears, the stop left out
        assert stopped.choices[0].message.content == full[: full.find(stop)]
        assert stopped.choices[0].finish_reason == "stop"


@pytest.mark.slow
def test_requests_without_a_valid_key_get_401(served):
    url, models = served["url"], "/v1/models"
    status, headers, body = call(url, "GET", models)
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    assert (
        body["error"]["code"] == "invalid_api_key" and "Authorization" in body["error"]["message"]
    )
    assert call(url, "GET", models, key="tl-not-a-key")[0] == 401
    assert call(url, "GET", models, headers={"Authorization": "Basic abc"})[0] == 401
    assert call(url, "GET", "/healthz")[0] == 200  # health needs no key

    con = served["con"]
    gone = keys.create_key(con, CONSOLE, "gone")
    wait_until(lambda: call(url, "GET", models, key=gone)[0] == 200, timeout=10)
    keys.revoke_key(con, CONSOLE, "gone")
    revoked = time.time()
    wait_until(lambda: call(url, "GET", models, key=gone)[0] == 401, timeout=10)
    assert time.time() - revoked < 5  # within seconds

    brief = keys.create_key(con, CONSOLE, "brief", expires_days=4 / 86400)
    assert call(url, "GET", models, key=brief)[0] in (200, 401)  # the server may not know it yet
    time.sleep(4.2)
    status, _, body = call(url, "GET", models, key=brief)
    assert status == 401 and body["error"]["code"] in ("expired_api_key", "invalid_api_key")
    with pytest.raises(ValueError, match="exists"):
        keys.create_key(con, CONSOLE, "alice")


def test_rate_limit_gives_429_with_retry_after(served):
    url, key = served["url"], served["keys"]["slow"]
    assert [call(url, "GET", "/v1/models", key=key)[0] for _ in range(2)] == [200, 200]
    status, headers, body = call(url, "GET", "/v1/models", key=key)
    assert status == 429 and body["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(headers["retry-after"]) <= 60
    limiter = RateLimiter()
    assert limiter.check("k", 2, now=0) is None and limiter.check("k", 2, now=1) is None
    assert limiter.check("k", 2, now=30) == pytest.approx(30)
    assert limiter.check("k", 2, now=60.5) is None  # the first request left the window


def test_oversized_and_malformed_requests_get_clear_errors(served):
    url, key = served["url"], served["keys"]["bob"]
    path = "/v1/chat/completions"
    status, _, body = call(url, "POST", path, chat("x" * 30_000), key=key)
    assert status == 413 and "20,000 bytes" in body["error"]["message"]

    def chunked():  # no Content-Length: counted while read
        yield json.dumps(chat("y" * 30_000)).encode()

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Authorization": f"Bearer {key}", "Transfer-Encoding": "chunked"}
    conn.request("POST", path, body=chunked(), encode_chunked=True, headers=headers)
    response = conn.getresponse()
    assert response.status == 413 and "error" in json.loads(response.read())
    conn.close()

    status, _, body = call(url, "POST", path, raw=b'{"model": "production", "messages": [', key=key)
    assert status == 400 and body["error"]["code"] == "invalid_json"
    status, _, body = call(url, "POST", path, raw=b"[" * 5000 + b"]" * 5000, key=key)
    assert status == 400 and "JSON" in body["error"]["message"]
    assert call(url, "POST", path, raw=b"[1, 2]", key=key)[0] == 400
    status, _, body = call(url, "POST", path, chat(temperature="hot"), key=key)
    assert status == 422 and body["error"]["param"] == "temperature"
    assert "temperature" in body["error"]["message"]
    status, _, body = call(url, "POST", path, chat(tools=[{"type": "function"}]), key=key)
    assert status == 422 and body["error"]["message"].startswith("Unrecognized request argument")
    status, _, body = call(url, "POST", path, chat(max_tokens=100_000), key=key)
    assert status == 422 and body["error"]["param"] == "max_tokens"
    status, _, body = call(url, "POST", path, {"model": "production", "messages": []}, key=key)
    assert status == 422 and body["error"]["param"] == "messages"
    status, _, body = call(url, "POST", path, chat(model="gpt-4o"), key=key)
    assert status == 404 and body["error"]["code"] == "model_not_found"
    status, _, body = call(url, "POST", path, chat("word " * 9000, max_tokens=8), key=key)
    assert status in (400, 413)
    assert call(url, "GET", "/v1/nothing", key=key)[0] == 404
    assert call(url, "POST", path, chat(max_tokens=3, temperature=0), key=key)[0] == 200


def test_batched_greedy_output_equals_the_request_alone(served):
    spec = read_json(served["folder"] / MODEL_FILE)
    engine = LoadedModel(spec)
    texts = ["The committee met.", "A much longer note about rural schools and their funds " * 4,
             "Budget approved on Monday.", "Bridge closed for repairs until March."]  # fmt: skip
    prompts = [engine.chat_prompt([{"role": "user", "content": t}], 16) for t in texts]
    alone = []
    for prompt in prompts:
        job = Job(engine, prompt, 16)
        run_batch([job])
        alone.append(job.tokens)
    together = [Job(engine, p, 16) for p in prompts]
    run_batch(together)
    assert [job.tokens for job in together] == alone
    assert len({tuple(tokens) for tokens in alone}) > 1  # the prompts get different answers

    batcher = Batcher(lambda: Limits(batch_wait_ms=200)).start()
    jobs = [Job(engine, p, 4) for p in prompts] + [Job(engine, prompts[0], 4, temperature=0.7)]
    batcher.submit(jobs)
    wait_until(lambda: all(job.finish_reason for job in jobs), timeout=60)
    assert (batcher.n_batches, batcher.n_rows) == (2, 5)  # the greedy four ran as one batch
    assert [job.tokens for job in jobs[:4]] == [tokens[:4] for tokens in alone]


def test_request_log_lands_in_the_store_with_texts_only_when_opted_in(served):
    url, con, path = served["url"], served["con"], served["folder"] / LOG_FILE
    before = len(path.read_text().splitlines()) if path.exists() else 0
    for name in ("alice", "bob"):
        call(url, "POST", "/v1/chat/completions", chat(f"secret of {name}", max_tokens=4,
             temperature=0), key=served["keys"][name])  # fmt: skip
    call(url, "GET", "/v1/models", key="tl-wrong")

    # Two lines per answer (its start, and its end once the last byte is out: the client may
    # be first); the wrong key's refusal may be coalesced with earlier ones (one line per 10 s).
    def ended(text):  # both answers' end lines are written
        return sum('"completion_tokens"' in line for line in text.splitlines()[before:]) >= 2

    log = wait_until(lambda: ended(t := path.read_text()) and t, 10)
    assert "secret of alice" in log and "secret of bob" not in log  # never written to disk
    assert path.stat().st_mode & 0o777 == 0o600  # it may hold prompts: this user's only
    runs.ingest_requests(con)
    assert runs.ingest_requests(con) == 0  # nothing new: nothing twice
    rows = con.execute(
        "SELECT key_name, status, prompt_tokens, completion_tokens, latency_ms, "
        "request_text, response_text FROM api_requests WHERE path = '/v1/chat/completions' "
        "AND (request_text LIKE '%secret of%' OR key_name = 'bob') ORDER BY id"
    ).fetchall()
    by_key = {row[0]: row for row in rows}
    assert "secret of alice" in by_key["alice"][5] and by_key["alice"][6] is not None
    assert by_key["bob"][5] is None and by_key["bob"][6] is None
    assert by_key["bob"][1] == 200 and by_key["bob"][2] > 0 and 0 < by_key["bob"][3] <= 4
    assert by_key["bob"][4] > 0
    refused = con.execute(
        "SELECT count(*) FROM api_requests WHERE status = 401 AND key_name IS NULL"
    ).fetchone()[0]
    assert refused >= 1
    stats = serving_store.request_stats(con, since=0)
    assert stats["requests"] >= 3 and stats["p50_ms"] > 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
# Any text, lone surrogates and control characters included (JSON carries them escaped).
texts = st.text(st.characters(exclude_categories=()), max_size=40)
stops = st.text(st.characters(exclude_categories=()), min_size=1, max_size=4)
content = texts | st.lists(
    st.fixed_dictionaries({"type": st.just("text"), "text": texts}), max_size=2
)
roles = st.sampled_from(["system", "developer", "user", "assistant"])
sampling = {
    "max_tokens": st.integers(1, 12),
    "temperature": st.floats(0, 2),
    "top_p": st.floats(0, 1, exclude_min=True),
    "n": st.integers(1, 3),
    "stop": stops | st.lists(stops, max_size=4),
    "seed": st.integers(-(2**63), 2**64 - 1),
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
    "user": texts,
}
valid_chat = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["production", "tiny-a"]),
        "messages": st.lists(
            st.fixed_dictionaries({"role": roles, "content": content}), min_size=1, max_size=3
        ),
    },
    optional=sampling | {"max_completion_tokens": st.integers(1, 12)},
)
valid_text = st.fixed_dictionaries(
    {"model": st.just("production"), "prompt": texts | st.lists(texts, min_size=1, max_size=4)},
    optional=sampling,
)


def with_one_bad_field(valid):
    """A valid body with one field (maybe a new one) set to any JSON value."""
    names = st.sampled_from([*sampling, "model", "messages", "prompt", "tools"]) | st.text(
        max_size=8
    )
    return st.tuples(valid, names, json_values).map(lambda t: t[0] | {t[1]: t[2]})


CHAT, TEXT = "/v1/chat/completions", "/v1/completions"
requests = st.one_of(
    st.tuples(st.just(CHAT), valid_chat),
    st.tuples(st.just(TEXT), valid_text),
    st.tuples(st.just(CHAT), with_one_bad_field(valid_chat)),
    st.tuples(st.just(TEXT), with_one_bad_field(valid_text)),
    st.tuples(st.sampled_from([CHAT, TEXT]), json_values | st.binary(max_size=64)),
)


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=requests)
def test_fuzzed_requests_never_get_a_server_error(served, request):
    path, body = request
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, _, answer = call(served["url"], "POST", path, raw=raw, key=served["keys"]["fuzz"])
    event(f"status {status}")  # pytest --hypothesis-show-statistics: how many got through
    assert status < 500, answer
    if status >= 400:
        assert isinstance(answer, dict) and answer["error"]["message"], answer
    elif isinstance(answer, str):  # a stream: it ends well, with no error event
        assert 'data: {"error"' not in answer and answer.endswith("data: [DONE]\n\n")
    else:
        assert answer["usage"]["completion_tokens"] <= 12 * len(answer["choices"])


def test_server_keeps_serving_after_the_fuzz(served):
    url, key = served["url"], served["keys"]["fuzz"]
    assert call(url, "GET", "/v1/models", key=key)[0] == 200
    assert call(url, "POST", "/v1/chat/completions", chat(max_tokens=2), key=key)[0] == 200
    assert runs.server_state().running


@pytest.mark.slow
def test_https_with_a_self_signed_certificate(served, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is missing")
    cert, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key_file), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    folder = tmp_path / "serve"
    folder.mkdir()
    for name in (MODEL_FILE, KEYS_FILE, LIMITS_FILE):
        shutil.copy(served["folder"] / name, folder / name)
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "serve-worker", str(folder), "--port", "0",
         "--ssl-certfile", str(cert), "--ssl-keyfile", str(key_file)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        status = wait_until(
            lambda: (s := read_json(folder / "status.json")) and s.get("state") != "loading" and s,
            timeout=120,
        )
        assert status["state"] == "ready" and status["url"].startswith("https://127.0.0.1:")
        url = status["url"].replace("127.0.0.1", "localhost")
        trusted = ssl.create_default_context(cafile=str(cert))
        answer = call(url, "GET", "/v1/models", key=served["keys"]["bob"], context=trusted)
        assert answer[0] == 200 and answer[2]["data"][0]["id"] == "tiny-a"
        with pytest.raises(ssl.SSLError):  # a client that does not trust it refuses it
            call(url, "GET", "/healthz", context=ssl.create_default_context())
        assert runs.check_health(status["url"])["status"] == "ok"
        shutil.rmtree(folder)  # a server whose folder is gone stops by itself
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    with pytest.raises(ValueError, match="in the clear"):
        serve(folder, host="0.0.0.0", port=0)


@pytest.mark.slow
def test_promotion_swaps_the_model_under_load_without_losing_a_request(served):
    """Four long streams run on tiny-a; promoting tiny-b rewrites model.json; the server loads
    tiny-b in the background and swaps. Every stream finishes on the model it started with;
    requests after the swap get tiny-b."""
    from engine.followups import promote_and_publish

    c = client(served, "bob")
    results, started = {}, threading.Barrier(5)

    def stream(i):
        chunks = c.chat.completions.create(
            model="production", max_tokens=300, temperature=0, stream=True,
            messages=[{"role": "user", "content": f"Tell a long story number {i}."}],
        )  # fmt: skip
        models, text, reason = set(), "", None
        for n, chunk in enumerate(chunks):
            if n == 0:
                started.wait(timeout=60)
            models.add(chunk.model)
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                reason = chunk.choices[0].finish_reason or reason
        results[i] = (models, len(text), reason)

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    started.wait(timeout=60)  # every stream has its first chunk
    promote_and_publish(served["con"], "tiny-b", CONSOLE, override_reason="hot swap test")
    assert read_json(served["folder"] / MODEL_FILE)["model_id"] == "tiny-b"
    wait_until(lambda: [m.id for m in c.models.list()] == ["tiny-b"], timeout=60)
    assert any(t.is_alive() for t in threads)  # the swap happened while they ran
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == [0, 1, 2, 3]
    for models, length, reason in results.values():
        assert models == {"tiny-a"} and length > 0 and reason in ("stop", "length")
    after = c.chat.completions.create(
        model="production", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    assert after.model == "tiny-b"
    assert runs.server_state().model_id == "tiny-b"


def test_cli_creates_lists_and_revokes_keys(home, capsys):
    from engine.__main__ import main
    from engine.paths import db_path

    assert main(["keys", "create", "ci-bot", "--rate-limit", "5", "--expires", "30"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1].split()[-1]
    assert key.startswith("tl-") and len(key) > 40
    assert main(["keys", "list"]) == 0
    assert "ci-bot" in capsys.readouterr().out
    assert main(["keys", "create", "ci-bot"]) == 1  # the name is taken
    assert main(["keys", "revoke", "ci-bot"]) == 0
    con = store.connect(db_path())
    row = con.execute("SELECT key_hash, rate_limit, revoked FROM api_keys").fetchone()
    assert row[0] == hashlib.sha256(key.encode()).hexdigest() and row[1] == 5 and row[2]
    assert key not in json.dumps(con.execute("SELECT * FROM api_keys").fetchall(), default=str)
    assert keys.list_keys(con, include_revoked=True)["state"].tolist() == ["revoked"]


@pytest.mark.slow
def test_serve_command_closes_the_database_while_it_serves(home, tiny_model):
    from engine.paths import db_path

    con = store.connect(db_path())
    register_base(con, "tiny", str(tiny_model))
    settings_store.set_setting(con, PRODUCTION, "tiny")
    key = keys.create_key(con, CONSOLE, "cli")
    con.close()
    env = os.environ | {"TUNELOOP_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "serve", "--port", "0"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        status = wait_until(
            lambda: (s := read_json(home / "serve" / "status.json")) and s["state"] != "loading"
            and s,
            timeout=120,
        )  # fmt: skip
        assert status["state"] == "ready", proc.stdout.read() if proc.poll() is not None else ""
        assert call(status["url"], "GET", "/v1/models", key=key)[2]["data"][0]["id"] == "tiny"
        again = store.connect(db_path())  # the app can open the store while the server runs
        keys.revoke_key(again, CONSOLE, "cli")
        wait_until(lambda: call(status["url"], "GET", "/v1/models", key=key)[0] == 401, 10)
        runs.ingest_requests(again)
        assert again.execute("SELECT count(*) FROM api_requests").fetchone()[0] >= 1
        again.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert read_json(home / "serve" / "status.json")["state"] == "stopped"


def test_limits_and_key_settings_are_checked(con, home):
    with pytest.raises(ValueError, match="default_max_tokens"):
        Limits(max_tokens=8, default_max_tokens=16)
    with pytest.raises(ValueError, match="Unknown limits"):
        Limits.from_dict({"max_tokenz": 3})
    for bad in (
        {"name": "a b"},
        {"name": "ok", "expires_days": -1},
        {"name": "ok", "rate_limit": 0},
    ):
        with pytest.raises(ValueError):
            keys.create_key(con, CONSOLE, **bad)
    with pytest.raises(ValueError, match="cannot"):
        keys.create_key(con, {"name": "rita", "role": "reviewer"}, "rita-key")
    assert not keys.export_keys(con)  # no serve folder: nothing written
    assert serving_store.list_keys(con).empty


def test_serve_page_creates_a_key_shown_once(home):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.run()
    at.text_input(key="login_setup_token").input((home / "setup-token").read_text())
    at.text_input(key="login_new_name").input("admin")
    at.text_input(key="login_new_password").input("correct horse")
    at.button[0].click().run()
    at.switch_page("pages/serve.py").run()
    assert not at.exception, at.exception
    at.text_input(key="serve_key_name").input("dashboard")
    at.checkbox(key="serve_key_texts").check()
    next(b for b in at.button if b.label == "Create key").click().run()
    assert not at.exception, at.exception
    shown = [c.value for c in at.code if c.value.startswith("tl-")]
    assert len(shown) == 1
    from engine.paths import db_path

    con = store.connect(db_path())
    stored = con.execute("SELECT name, key_hash, log_texts, created_by FROM api_keys").fetchall()
    assert stored == [("dashboard", hashlib.sha256(shown[0].encode()).hexdigest(), True, "admin")]


@pytest.mark.slow
def test_real_default_model_answers_the_same_alone_and_batched(home):
    """The real SmolLM2-135M behind the server: the openai client gets a real summary, and a
    greedy request answers the same alone and among concurrent ones."""
    from engine.models.registry import ensure_default_model

    con = store.connect(":memory:")
    ensure_default_model(con, progress=lambda message: None)
    # batch_wait_ms 200: the four concurrent requests share one batch.
    runs.write_folder(con, Limits(max_tokens=32, default_max_tokens=32, batch_wait_ms=200))
    key = keys.create_key(con, CONSOLE, "real")
    runs.start_server(con, CONSOLE, port=0)
    try:
        state = wait_until(
            lambda: (s := runs.server_state()).state in ("ready", "failed", "stopped") and s,
            timeout=180,
        )
        assert state.state == "ready", state
        c = OpenAI(base_url=state.url + "/v1", api_key=key, max_retries=0, timeout=300)
        documents = [
            "The town council voted on March 3, 2025 to close the Elm Street bridge for repairs.",
            "A BILL to rename the post office at 12 Main Street in Springfield, Ohio.",
            "The school board approved a $2 million budget for new buses on Monday.",
            "Heavy rain flooded the river valley; 200 families left their homes.",
        ]

        def ask(document):
            return (
                c.completions.create(
                    model="production", prompt=document, max_tokens=24, temperature=0
                )
                .choices[0]
                .text
            )

        alone = ask(documents[0])
        assert len(alone.split()) > 3
        together = {}
        threads = [
            threading.Thread(target=lambda d=d: together.setdefault(d, ask(d))) for d in documents
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert together[documents[0]] == alone
    finally:
        runs.stop_server(con, CONSOLE)
