"""Label: a model drafts summaries and reviewers correct them.

The worker (`worker`, `python -m engine draft-worker RUN_DIR`) drafts the documents of a run
folder in its own process (engine/models/drafting.py) and never opens the database; the app side
(`runs`) queues drafting runs and ingests their drafts. `review` hands drafts to reviewers and
turns corrections into accepted examples; `highlight` marks the sentences a draft draws on. The
feedback loop: `feedback` queues ratings and corrections from Chat and the API,
`feedback_review` turns accepted ones into examples, `loop_health` sums the loop up, `ordering`
puts the most useful documents first in both queues, `savings` measures what reviewing each
model's drafts cost. Blind A/B votes between models' evaluations
are the evaluation stage's (engine/evaluation/preference.py). Entry points: `python -m engine
draft|next|savings` (`cli`), the Label, Review, Chat and Loop health pages.
"""
