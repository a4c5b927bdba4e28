"""The web app as Streamlit serves it (``streamlit run``, ``ckptlab app``): an ``st.App``
running the page (``app_script.py`` -> ``ckptlab.ui.page``) plus the route that streams
built files from disk (``ckptlab.ui.server``). The repo's ``app.py`` is the same entry."""
import streamlit as st

from ckptlab.ui.server import PAGE_SCRIPT, lifespan, routes

app = st.App(str(PAGE_SCRIPT), routes=routes(), lifespan=lifespan)
