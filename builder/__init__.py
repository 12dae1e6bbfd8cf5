"""The engine of the visual model builder.

Turns plain-JSON designs (``ModelSpec``) into torch modules, prepares data, trains with events,
evaluates and exports. It never imports Streamlit: the app's pages and ``python -m builder`` are two
thin front ends over the same functions.
"""

__version__ = "0.1.0"
