"""Benchmarks, each a script: ``.venv/bin/python benchmarks/NAME.py`` (see the README)."""
