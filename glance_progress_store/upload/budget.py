# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""The bytes in flight that the uploads of one process share.

Every write an upload keeps in flight holds a chunk in memory. One write
per upload is what the stock driver holds too, so that one is free; the
writes beyond it are what makes an upload fast under latency, and they
are drawn from a budget of the process. The uploads running at a time
share it in equal parts: one upload alone gets all of it, and a new
upload gets its part as soon as the others' writes in flight complete,
since none of them may take more than its part again. Nothing waits on
the budget: an upload refused a write beyond its part waits for its own
oldest write instead, as it would at ``progress_rbd_writes_in_flight``.
"""

import os
import threading


class ProcessBudget:
    """Bytes of writes in flight, shared fairly by the uploads of a process."""

    def __init__(self, capacity):
        self._lock = threading.Lock()
        self.capacity = capacity
        self.used = 0
        self.peak = 0  # the most ever used: what the benchmark reports
        self.uploads = 0

    def share(self):
        """A share for one upload; use it as a context manager."""
        return Share(self)

    def _join(self):
        with self._lock:
            self.uploads += 1

    def _leave(self, held):
        with self._lock:
            self.uploads -= 1
            self.used -= held

    def _take(self, held, nbytes):
        with self._lock:
            part = self.capacity // max(self.uploads, 1)
            if held + nbytes > part or self.used + nbytes > self.capacity:
                return False
            self.used += nbytes
            self.peak = max(self.peak, self.used)
            return True

    def _give_back(self, nbytes):
        with self._lock:
            self.used -= nbytes


class Share:
    """One upload's part of a :class:`ProcessBudget`."""

    def __init__(self, budget):
        self._budget = budget
        self.held = 0

    def __enter__(self):
        self._budget._join()
        return self

    def __exit__(self, *exc_info):
        # Whatever the upload still holds (writes abandoned on a failure)
        # goes back with it.
        self._budget._leave(self.held)
        self.held = 0

    def try_take(self, nbytes):
        """Take ``nbytes`` for a write beyond the upload's first, or refuse."""
        if self._budget._take(self.held, nbytes):
            self.held += nbytes
            return True
        return False

    def give_back(self, nbytes):
        self.held -= nbytes
        self._budget._give_back(nbytes)


_budgets = {}
_budgets_lock = threading.Lock()


def for_store(name, capacity):
    """The process's budget of the store ``name`` (one per backend)."""
    with _budgets_lock:
        budget = _budgets.get(name)
        if budget is None:
            budget = _budgets[name] = ProcessBudget(capacity)
        budget.capacity = capacity
        return budget


def _forget_after_fork():
    # A uWSGI worker forked from a master that uploaded (a test, a
    # preloaded app) starts with none of the master's uploads.
    global _budgets_lock
    _budgets.clear()
    _budgets_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
