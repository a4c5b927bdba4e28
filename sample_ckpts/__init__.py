"""Tiny demo checkpoints for the five stories of DESIGN.md, and the models that made them."""
