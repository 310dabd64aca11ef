"""Compare: evaluate models on the held-out test split and decide which one ships.

The worker (`worker`, `python -m engine eval-worker RUN_DIR`) summarizes and scores a test split
in its own process and never opens the database, with the scores in `metrics` (ROUGE, semantic
similarity, unsupported facts). The app side (`runs`) queues evaluations and ingests their
scores; `comparison` pairs two evaluations with bootstrap CIs and promotes a model; `report` and
`charts` draw them. Entry points: `python -m engine eval|compare|promote` (`cli`), the Compare
page.
"""
