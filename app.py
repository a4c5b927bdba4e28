"""ckptlab web app entry point: page config and navigation only (logic lives in ckptlab/)."""
import streamlit as st

st.set_page_config(page_title="ckptlab", page_icon="🧪", layout="wide")
st.title("ckptlab")
st.info("The checkpoint lab is being assembled: the alignment view lands with the app issue.")
