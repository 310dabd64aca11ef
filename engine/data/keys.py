"""The identities of what the store holds, in one place: a document's key and an example's
content hash. Imports, reviews, feedback and edits all compute them here, so the same document
or the same (document, summary) pair is recognised whichever way it arrives. The store enforces
the second (a UNIQUE index on examples.content_hash, migration m011_unique_content_hash).

Never change these algorithms: every stored document id and content hash was made with them.
"""

from __future__ import annotations

import xxhash


def _digest(text: str) -> str:
    return xxhash.xxh3_128_hexdigest(text.encode("utf-8"))


def document_key(raw_text: str) -> str:
    """A document's id: the xxh3-128 of its raw text, so the same text is one document."""
    return _digest(raw_text)


def content_hash(document_id: str, summary: str | None) -> str:
    """An example's identity: its document and its summary with whitespace normalised (words
    joined by single spaces). No summary hashes as an empty one: one "waiting for a reference"
    example per document."""
    return _digest(document_id + "\x00" + " ".join((summary or "").split()))
