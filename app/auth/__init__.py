"""Login, logout and invite acceptance (X1)."""
from app.auth.views import bp

__all__ = ["bp"]
