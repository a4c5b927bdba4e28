"""The script Streamlit runs for each visitor (``app.py`` serves it); see ``ckptlab.ui.page``."""
from ckptlab.ui.page import main

main()
