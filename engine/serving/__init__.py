"""The serving stage: the production model behind an authenticated, OpenAI-compatible API, and
its export as a Hugging Face folder.

- `worker.py`: the server process (`python -m engine serve-worker SERVE_DIR`), never the
  database; `api.py` its app, `routes.py` the endpoints, `checks.py` the key and body checks
  they depend on, `schemas.py` the request bodies, `responses.py` OpenAI's response and error
  shapes, `batcher.py` dynamic batching over the project's generation code.
- `runs.py`: the app's side: write the serve folder (`folder.py`), start and stop the server,
  ingest its request log; `keys.py`: API keys; `cli.py`: the `serve` and `keys` commands.
- `export.py`: a model as a standalone Hugging Face folder (`export-model`).
"""
