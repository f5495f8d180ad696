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

"""Which memcached servers a long-lived reader knows to be down.

Inside glance-api (the progress endpoint) a read of a memcached that does
not answer holds a worker for the whole socket timeout, and dashboards
poll on: a frozen memcached would hold every worker of glance-api. So a
server that failed is *known down* for ``dead_retry`` seconds, and a
read of it fails at once (:class:`KnownDown`) instead of waiting. Then
one read at a time tries it again: if the server answers it is up for
everyone, else it is known down for another ``dead_retry`` seconds.

One :class:`Breaker` per process, shared by its threads; a lock guards
a dictionary lookup, never a read.
"""

import contextlib
import dataclasses
import logging
import math
import threading
import time

from glance_progress_store import _memcache

LOG = logging.getLogger(__name__)


class KnownDown(_memcache.ServerUnavailable):
    """A read refused without asking the server: it is known down."""

    def __init__(self, server, why, retry_after):
        self.retry_after = retry_after
        super().__init__(server, 'is known down (it %s); tried again in '
                         '%d s at most' % (why, retry_after))


@dataclasses.dataclass
class _Down:
    until: float  # when the next read may try the server again
    why: str  # how it failed last
    trying: bool = False  # a read is trying it now


class Breaker:
    """Known-down servers of one process, with when to try them again."""

    def __init__(self, dead_retry, clock=time.monotonic):
        self.dead_retry = dead_retry
        self._clock = clock
        self._down = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def read(self, server):
        """Around one read of ``server``.

        Raises :class:`KnownDown` at once when the server is known down
        and it is not this read's turn to try it; records how the read
        went otherwise (a ``ServerUnavailable`` from the read marks the
        server down; any answer marks it up).
        """
        trying = self._admit(server)
        try:
            yield
        except _memcache.ServerUnavailable as e:
            self._failed(server, e.why)
            raise
        except BaseException:
            if trying:  # no verdict on the server: let another read try
                self._release(server)
            raise
        else:
            if trying:
                self._answered(server)

    def _admit(self, server):
        with self._lock:
            down = self._down.get(server)
            if down is None:
                return False
            now = self._clock()
            if down.trying or now < down.until:
                raise KnownDown(server, down.why,
                                max(1, math.ceil(down.until - now)))
            down.trying = True
            return True

    def _failed(self, server, why):
        with self._lock:
            was_down = server in self._down
            self._down[server] = _Down(self._clock() + self.dead_retry, why)
        if not was_down:
            LOG.warning('memcached %s %s: known down, tried again after '
                        '%g s', server, why, self.dead_retry)

    def _answered(self, server):
        with self._lock:
            self._down.pop(server, None)
        LOG.info('memcached %s answers again', server)

    def _release(self, server):
        with self._lock:
            down = self._down.get(server)
            if down is not None:
                down.trying = False
