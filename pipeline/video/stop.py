"""Ctrl-C / SIGTERM handling for the video loop."""

from __future__ import annotations

import signal
import sys
import threading


class GracefulStop:
    """First Ctrl-C / SIGTERM: finish the batch in flight, then stop (video, JSONL and summary then
    hold the same frames). A second one interrupts at once."""

    def __init__(self):
        self.requested = False
        self._old: dict[int, object] = {}

    def _handle(self, signum, _frame):
        if self.requested:
            raise KeyboardInterrupt(f"signal {signum}")
        self.requested = True
        print(f"\n{signal.Signals(signum).name}: stopping after the current batch "
              f"(again to stop at once)", file=sys.stderr, flush=True)

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():  # signals only reach the main thread
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
