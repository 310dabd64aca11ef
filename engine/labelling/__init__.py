"""Label: a model drafts summaries, reviewers correct them, and blind A/B votes compare models.

The worker (`worker`, `python -m engine draft-worker RUN_DIR`) drafts the documents of a run
folder in its own process and never opens the database; the app side (`runs`) queues drafting
runs and ingests their drafts. `review` hands drafts to reviewers and turns corrections into
accepted examples; `preference` runs blind A/B votes and keeps reviewers from un-blinding them;
`highlight` marks the sentences a draft draws on. The feedback loop: `feedback` queues ratings
and corrections from Chat and the API and turns accepted ones into examples, `ordering` puts the
most useful documents first in both queues, `savings` measures what reviewing each model's
drafts cost. Entry points: `python -m engine draft|next|savings` (`cli`), the Label, Review,
Blind A/B, Chat and Loop health pages.
"""
