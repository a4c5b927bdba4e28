"""The script ``ckptlab app`` hands to ``streamlit run``: the same page as the repo's ``app.py``,
shipped inside the package so an installed ckptlab serves it from any folder."""
from ckptlab.ui.page import main

main()
