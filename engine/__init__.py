"""Tuneloop's engine: all ML and data logic, no Streamlit. Run `python -m engine --help`."""
