"""Streamlit-only helpers shared by the pages: session state, widgets, charts, messages.

A subfolder of ``pages/`` so Streamlit never mistakes it for a page; it may import ``builder``,
never the other way round.
"""
