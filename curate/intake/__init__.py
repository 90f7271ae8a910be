"""Intake: the image store, decoding checks, folder ingest and web scraping."""
