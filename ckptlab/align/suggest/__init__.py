"""Suggestion stages, each one way: a stage reads the alignment so far and proposes recipe fragments."""
