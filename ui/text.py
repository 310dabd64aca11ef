"""Showing data as text: what people or models wrote (titles, file names, documents, summaries,
reasons, tags, chat messages) never renders as Markdown links, images or headings, nor as HTML.

Prefer elements that never parse: `st.text`, `st.code`, `st.text_area(disabled=True)`,
`st.dataframe`. Where data sits inside formatting (`st.markdown`, `st.subheader`, `st.caption`,
`st.error`, widget labels), pass it through `plain`. Model answers in Chat may use Markdown but
never load anything: `no_remote_content` (and `stream_markdown` while they stream). Never
`unsafe_allow_html=True` with data; `st.html` only with `html.escape`d data.
"""

from __future__ import annotations

import re

# Every ASCII punctuation character: CommonMark lets a backslash escape each of them.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# Tags that load something (or style the page) even where HTML renders as little as it does.
_MEDIA_TAG = re.compile(
    r"<\s*/?\s*(img|image|picture|source|svg|video|audio|iframe|object|embed|link|style|script)"
    r"\b[^>]*>?",
    re.IGNORECASE,
)
NOT_SHOWN = "(image not shown)"


def plain(text) -> str:
    """`text` as Markdown that shows exactly these characters: every ASCII punctuation
    character is backslash-escaped, so no link, image, heading, list, emphasis, table, HTML
    tag, LaTeX ($…$) or Streamlit directive (:red[…]) can form; a newline stays a line break.
    None shows as nothing."""
    if text is None:
        return ""
    return _PUNCTUATION.sub(r"\\\1", str(text)).replace("\n", "  \n")


def no_remote_content(markdown: str) -> str:
    """A model's Markdown answer without images (`![…](…)`, `![…][…]`) or media tags
    (`<img …>`), which a browser would fetch from wherever they point: a tracking beacon in a
    document could otherwise be fetched when the model repeats it. Links and the rest of the
    formatting stay."""
    markdown = _MEDIA_TAG.sub(NOT_SHOWN, markdown or "")
    return markdown.replace("![", "!\\[")  # an image needs exactly "![": now it is text


def stream_markdown(container, chunks) -> str:
    """Draw streamed text chunks into `container` (an st.empty() or any element) as Markdown
    without remote content, redrawing the whole answer as it grows (an image split across
    chunks never forms); returns the full text. Use instead of st.write_stream for models."""
    text = ""
    slot = container.empty()
    try:
        for chunk in chunks:
            text += chunk
            slot.markdown(no_remote_content(text))
    finally:
        getattr(chunks, "close", lambda: None)()  # a generator stops generating (see stream_chat)
    return text
