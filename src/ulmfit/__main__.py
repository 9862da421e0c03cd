import logging
import os
import sys

from .cli import main

code = main()
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    # A torchrun worker ends without the interpreter's teardown. Its files are written and it has left the process
    # group (cli.main), but a thread that gloo or the rendezvous store started in C++ can still be alive while static
    # objects are destroyed, and now and then that aborts a finished run ("terminate called without an active
    # exception": SIGABRT, so torchrun reports a failure). Flush what Python buffers, then exit with the code.
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can be written anyway
            pass
    os._exit(code)
raise SystemExit(code)
