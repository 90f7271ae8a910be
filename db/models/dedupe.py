"""Tables of the dedupe stage (owned by the dedupe work; empty until it lands).

Add SQLModel table classes here and list them in __all__; write the matching
migration in db/migrations/versions/ (the dedupe revision).
"""
__all__: list[str] = []
