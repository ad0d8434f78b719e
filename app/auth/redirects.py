"""Where a `next` parameter may send the browser: same-site paths only (no open redirect)."""
from urllib.parse import urlsplit


def safe_next(target: str | None) -> str | None:
    """Return `target` when it is a same-site path, else None (the caller picks its default)."""
    if not target:
        return None
    # Browsers read "\" as "/" (so "/\evil.example" is "//evil.example") and drop tabs and
    # newlines inside URLs: refuse both rather than guess what a browser would make of them.
    if "\\" in target or any(ord(char) < 32 or ord(char) == 127 for char in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target
