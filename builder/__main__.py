"""``python -m builder``: the command-line front end (see ``builder.cli``)."""

import gc

from builder.memory import return_big_blocks_to_the_system

if __name__ == "__main__":
    # The process is the command's own and may read a big table; before the imports, so that
    # pyarrow's allocator starts with the setting too.
    return_big_blocks_to_the_system()
    from builder.cli import main

    code = main()
    # Python's last garbage collection at exit walks every object torch, sympy and onnxscript
    # created: 1.5-3 s of a 16 s command on 2 cores (measured). Everything the command wrote is
    # closed by now, so the objects still alive are frozen out of that walk; exit handlers and
    # ordinary clean-up still run.
    gc.freeze()
    raise SystemExit(code)
