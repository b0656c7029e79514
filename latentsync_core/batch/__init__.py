"""`python -m latentsync_core batch`: many lip-sync jobs on a Ray cluster (a local one by default).

Ray is optional for the rest of the pack: only `driver` and `actors` import it, and only when a batch
runs (`pip install -r requirements-batch.txt`). `jobs` and `manifest` are plain Python, so the jobs
format and the resume rules are testable without it.
"""
