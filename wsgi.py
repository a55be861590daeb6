"""WSGI entry point: ``gunicorn wsgi:app`` or ``flask --app wsgi ...``."""

import gc

from app import create_app

app = create_app()

# The app and its libraries leave ~200,000 long-lived objects behind; a full garbage
# collection walks them all (about 100 ms here), and a large order batch triggers several.
# Freezing moves them out of the collector's sight: only what requests allocate is scanned.
# A higher first threshold lets a request's burst of short-lived rows die young, unscanned.
gc.freeze()
gc.set_threshold(50_000, 20, 100)
