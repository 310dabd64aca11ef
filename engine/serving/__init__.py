"""The serving stage: the production model behind an authenticated, OpenAI-compatible API.

- `worker.py`: the server process (`python -m engine serve-worker SERVE_DIR`), never the
  database; `api.py` its endpoints, `schemas.py` the request bodies, `batcher.py` dynamic
  batching over the project's generation code.
- `runs.py`: the app's side: write the serve folder (`folder.py`), start and stop the server,
  ingest its request log; `keys.py`: API keys; `cli.py`: `serve` and `keys` commands.
"""
