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

"""The exporter's one reader of memcached: discovery, every --refresh s.

Everything the listener serves is made from the :class:`Status` this
thread last stored, so a scrape storm costs memcached nothing. Failed
uploads are counted here, once per record, because a counter must
survive the record leaving discovery's ``--since`` window.
"""

import dataclasses
import logging
import threading
import time

from glance_progress_store.cmd import exporter
from glance_progress_store.read import states

LOG = logging.getLogger(__name__)

OTHER_REASON = 'other'


def backend_label(backend):
    """The ``backend`` label of a view: ``""`` for the single-store keys
    ("default" would clash with a multi-store backend of that name)."""
    return backend or ''


def reason_label(reason):
    """A failure reason the store writes, or ``other``: a hostile
    memcached must not make label sets without bound."""
    return reason if reason in states.REASONS else OTHER_REASON


@dataclasses.dataclass(frozen=True)
class Status:
    """What the exporter knows at one moment; replaced, never changed."""

    servers: tuple  # every memcached server of the configuration
    backends: tuple  # the backend labels the configuration has
    snapshot: object = None  # the last discovery.Snapshot read, if any
    failures: dict = dataclasses.field(default_factory=dict)
    refreshes: int = 0  # discovery reads that returned
    refresh_errors: int = 0  # discovery reads that raised
    refresh_duration_s: object = None  # of the last read
    refresh_error: object = None  # why the last read raised, or None


class Refresher:
    """Reads discovery every `interval` seconds into :attr:`status`."""

    def __init__(self, read, servers, backends, interval, since,
                 clock=time.time):
        self._read = read
        self._interval = interval
        self.since = since
        self._clock = clock
        self._seen = {}  # failed record -> its updated_at
        self._stop = threading.Event()
        self._thread = None
        self.status = Status(tuple(servers), tuple(backends))

    def refresh(self):
        """One read; never raises (a failed read is counted and logged)."""
        status = self.status
        started = time.monotonic()
        try:
            snapshot = self._read()
        except Exception as e:
            duration = time.monotonic() - started
            LOG.warning('refresh failed after %.1f s: %s', duration, e)
            self.status = dataclasses.replace(
                status, refresh_errors=status.refresh_errors + 1,
                refresh_duration_s=duration,
                refresh_error='%s: %s' % (type(e).__name__, e))
            return
        duration = time.monotonic() - started
        for server, why in sorted(snapshot.unreadable.items()):
            LOG.debug('memcached %s unreadable: %s', server, why)
        self.status = dataclasses.replace(
            status, snapshot=snapshot,
            failures=self._count_failures(status.failures, snapshot),
            refreshes=status.refreshes + 1, refresh_duration_s=duration,
            refresh_error=None)

    def _count_failures(self, failures, snapshot):
        failures = dict(failures)
        for view in snapshot.views:
            if view.state != states.FAILED:
                continue
            key = (view.image_id, view.backend, view.started_at)
            if key in self._seen:
                continue
            self._seen[key] = view.updated_at or snapshot.taken_at
            label = (backend_label(view.backend), reason_label(view.reason))
            failures[label] = failures.get(label, 0) + 1
        # Forget a failure once discovery cannot list it again: it lists
        # ended uploads updated within --since of its read, so twice that
        # is safely past it, and the minute covers clocks that disagree.
        horizon = snapshot.taken_at - 2 * (self.since or 0) - 60
        for key, updated_at in list(self._seen.items()):
            if updated_at < horizon:
                del self._seen[key]
        return failures

    def _run(self):
        # Every `interval` seconds from the start of the previous read, or
        # right after it when a read took longer.
        while True:
            spent = self.status.refresh_duration_s or 0.0
            if self._stop.wait(max(0.0, self._interval - spent)):
                return
            self.refresh()

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='glance-progress-refresh')
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._interval + exporter.SOCKET_TIMEOUT * 2)
