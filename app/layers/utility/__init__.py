"""Utility layer (U): bulk supply against unit meters."""
from app.layers import layer_blueprint

bp = layer_blueprint("utility", "/utility")

from app.layers.utility import views  # noqa: E402,F401
