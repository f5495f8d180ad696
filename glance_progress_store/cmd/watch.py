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

"""``glance-progress watch``: follow uploads until each one ends.

What is read and what counts as ended (how long a restarting memcached
is given, how long an image may have no record yet) is here; the loop
and the displays are :mod:`glance_progress_store.cmd.follow`'s.
"""

import dataclasses
import time

from glance_progress_store.cmd import follow
from glance_progress_store.read import lookup
from glance_progress_store.read import states


class Watch:
    """Polls the records until every upload ended, one bar or line each."""

    def __init__(self, settings, image_ids, out, backend=None,
                 stall_after=60.0, interval=1.0, timeout=None,
                 wait_start=30.0):
        self.image_ids = image_ids
        self.backend = backend
        self.stall_after = stall_after
        self.interval = interval
        self.timeout = timeout
        self.wait_start = wait_start
        self.lookup = lookup.Lookup(settings, stall_after)
        self.out = out
        self.started = time.monotonic()
        self.reachable = set()
        self.down_since = {}

    def rows(self):
        """This poll's (view, final) pairs, one per upload."""
        self.lookup.poll()
        now, mono = time.time(), time.monotonic()
        rows = []
        for image_id in self.image_ids:
            read = [self._read(image_id, name, source, now, mono)
                    for name, source in self.lookup.targets(self.backend)]
            found = [r for r in read if r[0].state != states.UNKNOWN]
            named = [r for r in found if r[0].backend is not None]
            if named:  # the plain keys repeat one of these records
                found = named + [r for r in found if r[0].error and
                                 r[0].backend is None]
            if not found:
                waiting = mono - self.started < self.wait_start
                state = states.WAITING if waiting else states.UNKNOWN
                found = [(dataclasses.replace(read[0][0], state=state),
                          not waiting)]
            rows += found
        return rows

    def _read(self, image_id, backend, source, now, mono):
        # A record that vanished keeps its last state (Lookup).
        view = self.lookup.read(image_id, backend, source, now)
        if view.state == states.UNREACHABLE:
            # wrong servers: give up at once; a restart: give it time
            down_for = mono - self.down_since.setdefault(source, mono)
            return view, (source not in self.reachable or
                          down_for >= self.stall_after)
        self.reachable.add(source)
        self.down_since.pop(source, None)
        return view, view.state not in states.ACTIVE

    def run(self):
        """Poll until every upload ended or --timeout; the exit code."""
        def poll():
            rows = self.rows()
            return ([view for view, _ in rows],
                    all(final for _, final in rows))

        return follow.follow(poll, self.out, self.interval, self.timeout)
