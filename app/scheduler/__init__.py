"""The scheduler process (``flask --app wsgi scheduler run``): a few periodic sweeps.

The database is the source of truth; APScheduler only says when to look. Its job store is in
memory, so a restart loses nothing, and every sweep is safe to run in several processes at once
(rows are claimed with leases). It never runs inside web workers.
"""
