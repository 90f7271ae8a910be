"""`train serve`: a web page and a JSON API for triage with a finished run (FastAPI on uvicorn)."""
