"""``python -m builder``: the command-line front end (see ``builder.cli``)."""

from builder.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
