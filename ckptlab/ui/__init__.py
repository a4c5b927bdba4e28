"""The web app's Streamlit pieces. Thin by design: every decision lives in the core
(``ckptlab.align``, ``ckptlab.recipe.edits``, ``ckptlab.merge`` ...); these modules only lay
out widgets, keep per-session state, and turn ``CheckpointError``s into one-line errors.
"""
