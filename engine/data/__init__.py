"""Curate: turn a pile of files into clean, deduplicated, split examples in the store.

Import (`opening` finds the format and maps columns, `readers`/`documents`/`hub` read tables,
text/PDF folders and Hugging Face datasets, `sources` holds what they share, `imports` stores
them), clean (`clean` rules, applied by `curation` with quality flags from `quality`), find and
resolve duplicates (`similarity` algorithms, `dedupe` in the store), edit with versions and
history (`editing`), split by duplicate cluster (`split`), and export a frozen dataset version
(`export`). This stage has no background worker: everything runs in the caller's process.
Entry points: `python -m engine import|clean|dedupe|resolve|split|export|stats` (`cli`), the
Data, Curate and Duplicates pages.
"""
