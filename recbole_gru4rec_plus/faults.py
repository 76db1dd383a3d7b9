"""A test hook that stops this process at an exact moment of a write, for a test to kill it there.

With ``RECBOLE_GRU4REC_PLUS_FAULT=KIND:SUFFIX:N`` in the environment, the N-th such moment for a
path ending with SUFFIX creates the file named by ``RECBOLE_GRU4REC_PLUS_FAULT_FLAG`` and waits to
be killed. KIND is ``write`` (half-way through the first chunk written to a file by
``runs.atomic_write``) or ``swap`` (between the two renames of ``replace_folder``, which then
does not use the one-step exchange). Without the variable (always, outside tests) nothing happens.
"""

import os
import time

_SPEC = os.environ.get("RECBOLE_GRU4REC_PLUS_FAULT")
_seen = {}


def should_stop(kind, path):
    """Whether this is the moment named by the environment (counts the moments of ``kind``)."""
    if not _SPEC:
        return False
    wanted, suffix, count = _SPEC.split(":")
    if kind != wanted or not str(path).endswith(suffix):
        return False
    _seen[kind] = _seen.get(kind, 0) + 1
    return _seen[kind] == int(count)


def stop_here():
    """Signal the test through the flag file, then wait for its kill."""
    with open(os.environ["RECBOLE_GRU4REC_PLUS_FAULT_FLAG"], "w"):
        pass
    while True:
        time.sleep(1)


class StopHalfway:
    """A file that stops the process after half of the first chunk written to it has reached the disk."""

    def __init__(self, file):
        self._file = file

    def write(self, data):
        view = memoryview(data).cast("B")
        self._file.write(view[: max(1, len(view) // 2)])
        self._file.flush()
        os.fsync(self._file.fileno())
        stop_here()

    def __getattr__(self, name):
        return getattr(self._file, name)
