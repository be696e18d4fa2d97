"""One status refresh at a time per BentoDeployment; a burst of child events becomes one rerun.

A rollout changes every child Deployment and pod of a BentoDeployment within a second, and
kopf runs the event handlers of different children on several threads at once. Each refresh
reads the children and patches the status guarded by its resourceVersion, so concurrent
refreshes of one parent conflict with one another, and one that lost every attempt would
drop the last change for good. Here a refresh that arrives while another of the same parent
runs only asks for a rerun: the running thread goes once more, after what it has, and that
rerun lists the children after every event that asked for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable


class Coalescer:
    """Run `call` for a key unless one runs already; then make that one run again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._again: dict[Hashable, bool] = {}  # key -> a rerun was asked for

    def run(self, key: Hashable, call: Callable[[], bool]) -> bool:
        """Whether this thread's calls returned True; False at once if another thread runs it.

        An exception ends the run for `key` (a rerun asked for is dropped with it: the next
        event runs it afresh) and propagates to the caller.
        """
        with self._lock:
            if key in self._again:
                self._again[key] = True
                return False
            self._again[key] = False
        result = False
        try:
            while True:
                result = call() or result
                with self._lock:
                    if not self._again[key]:
                        del self._again[key]
                        return result
                    self._again[key] = False
        except BaseException:
            with self._lock:
                self._again.pop(key, None)
            raise
