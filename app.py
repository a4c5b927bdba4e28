"""ckptlab web app: ``streamlit run app.py``.

A thin entry. Streamlit finds ``app`` (an ``st.App``) and serves the page
(``ckptlab/ui/page.py``) with one extra route that streams built files from disk.
"""
import streamlit as st

from ckptlab.ui.server import PAGE_SCRIPT, routes

app = st.App(str(PAGE_SCRIPT), routes=routes())
