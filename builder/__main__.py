"""``python -m builder``: the command-line front end (see ``builder.cli``)."""

from builder.cli import main
from builder.memory import return_big_blocks_to_the_system

if __name__ == "__main__":
    return_big_blocks_to_the_system()  # the process is the command's own, and may read a big table
    raise SystemExit(main())
