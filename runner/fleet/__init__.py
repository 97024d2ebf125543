"""Fleets: one runbook on many targets of an inventory (inventory.py, credentials.py), through
an executor (runner.executor: threads, or Celery workers in celery_app.py), with one
aggregate report (result.py, report.py). run.py holds the library call, `run_fleet`."""
