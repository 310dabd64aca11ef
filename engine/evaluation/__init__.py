"""Compare: evaluate models on the held-out test split and decide which one ships.

The worker (`worker`, `python -m engine eval-worker RUN_DIR`) summarizes a test split with the
shared drafting core (engine/models/drafting.py) and scores it in its own process, never opening
the database, with the scores of engine/metrics.py (ROUGE, semantic similarity, unsupported
facts) and the intervals of engine/stats.py. The app side (`runs`) queues evaluations and
ingests their scores; `comparison` pairs two evaluations with bootstrap CIs and promotes a model
(engine/followups.py publishes it to the API server); `preference` runs blind A/B votes between
two evaluations' summaries and keeps reviewers from un-blinding them; `report` and `charts` draw
them. Entry points: `python -m engine eval|compare|promote` (`cli`), the Compare and Blind A/B
pages.
"""
