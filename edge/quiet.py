"""Silence TensorFlow's converter, which prints huge capture lists from C++ to fd 1/2."""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading


#: fds 1 and 2 belong to the process: two threads redirecting them at once (detectors made per worker
#: thread, each loading a LiteRT interpreter) would each save the other's temp file and leave stdout
#: pointing at a closed one; every later line of output was lost (`eval --detect --json` printed nothing,
#: exit 0, in 1 of 4 runs). One redirect at a time.
_LOCK = threading.RLock()


@contextlib.contextmanager
def quiet_fds():
    """Redirect the process's stdout/stderr file descriptors to a temp file.

    On an exception the captured tail is re-printed to stderr, so nothing that
    explains a failure is lost. Thread-safe: concurrent callers take turns.
    """
    with _LOCK, _redirected():
        yield


@contextlib.contextmanager
def _redirected():
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            sink.seek(max(0, sink.seek(0, 2) - 4000))
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
