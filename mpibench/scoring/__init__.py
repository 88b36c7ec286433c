"""Scoring answers on the 1-10 scale: rubric, local LLM judge, human CSV; agreement; determinism."""


class ScoringError(ValueError):
    """Bad scoring input (rubric, CSV, options); the message says what to fix."""
