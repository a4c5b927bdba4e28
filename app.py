"""ckptlab web app: ``streamlit run app.py`` (or ``ckptlab app``).

A thin entry: Streamlit finds ``app`` (an ``st.App``) and serves the page
(``ckptlab/ui/app_script.py`` -> ``ckptlab/ui/page.py``) with one extra route that
streams built files from disk (``ckptlab/ui/server.py``); ``ckptlab/ui/serve.py`` is the
same entry inside the package.
"""
import streamlit as st

from ckptlab.ui.server import PAGE_SCRIPT, lifespan, routes

app = st.App(str(PAGE_SCRIPT), routes=routes(), lifespan=lifespan)
