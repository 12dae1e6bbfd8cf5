"""Files copied as they are into every export bundle (the standalone ``predict.py``).

They are templates, not part of the engine: nothing in ``builder`` imports them.
"""
