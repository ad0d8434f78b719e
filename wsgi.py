"""WSGI entry point: `gunicorn wsgi:app` or `flask --app wsgi run`."""
import gc

from app import create_app

app = create_app()
# The objects made at start-up (modules, routes, templates, catalogues) live as long as the process:
# moved out of the collector's reach, a full collection no longer walks them on every request
# (that walk was most of the utility pages' p95; issue 19).
gc.freeze()
