"""The `modelspec` command line (main.py wires the commands).

A signal that lands while the command is still starting (importing torch takes seconds) would end it
with a Python traceback from inside an import, or, for SIGTERM, silently: until `main` installs its
own handling, Ctrl-C and SIGTERM end the start-up at once with one line and their documented exit
codes (130, 143). Installed here, before anything heavy is imported.
"""

import os
import signal


def _stop_starting(signum, frame) -> None:
    os.write(2, b"stopped while starting; nothing was written\n")
    os._exit(128 + signum)


try:
    signal.signal(signal.SIGTERM, _stop_starting)
    signal.signal(signal.SIGINT, _stop_starting)
except ValueError:  # imported from a thread other than the main one: signals are not its business
    pass
