"""Streamlit monitoring app (read-only) and the queries behind it."""
