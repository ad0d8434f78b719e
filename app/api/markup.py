"""The docs page's text: the document's descriptions use Markdown's inline code (`X-API-Key`)."""
from __future__ import annotations

import re

from markupsafe import Markup, escape

INLINE_CODE = re.compile(r"`([^`\n]+)`")


def inline_code(text: str | None) -> Markup:
    """`text` escaped, with each `backticked` span shown as code (the only Markdown the document uses)."""
    return Markup(INLINE_CODE.sub(r"<code>\1</code>", str(escape(text or ""))))
