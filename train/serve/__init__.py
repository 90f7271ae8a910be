"""`train serve`: a web page and a JSON API for triage with a finished run (FastAPI on uvicorn)."""

# `train serve --login`'s lockout (`train.serve.auth.Lockout`), here so that the CLI's default and help need no web
# framework imported: wrong logins from one address within LOCK_SECONDS before it must wait
LOCK_AFTER = 10
LOCK_SECONDS = 300.0
