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

"""Reading the records of images from every place glance-api writes them.

``show``, ``watch`` and ``orphans`` read through one :class:`Lookup`, so
that an unreachable memcached or a value this package did not write is
reported the same way by each, as a view instead of an exception.
"""

from glance_progress_store import _memcache
from glance_progress_store.read import reader
from glance_progress_store.read import states
from glance_progress_store.read import views


class Lookup:
    """Reads views of records; one reader per source, checked every poll.

    A record that vanishes (expired, or memcached restarted) keeps the
    last state this lookup read of it, so a long watch does not turn an
    upload it saw into ``unknown``.
    """

    def __init__(self, settings, stall_after):
        self.settings = settings
        self.stall_after = stall_after
        self._readers = {}
        self._last = {}  # (image id, backend, source) -> last record read
        self.down = {}  # source -> why it is unreachable, this poll

    def poll(self):
        """Check every source once; unanswered ones are reported, not read."""
        self.down = {}
        for source in self.settings.sources():
            found = self._readers.get(source)
            if found is None:
                found = self._readers[source] = reader.ProgressReader(
                    source.servers, source.prefix)
            try:
                found.check_servers()
            except _memcache.ServerUnavailable as e:
                self.down[source] = str(e)

    def targets(self, backend):
        """(backend, source) pairs to read: all of them without --backend."""
        return [(name, source) for name, source in
                self.settings.targets(backend)
                # the plain pair reports a source that is down
                if name is None or backend is not None or
                source not in self.down]

    def read(self, image_id, backend, source, now):
        """The view of one record; unreachable and bad ones included."""
        if source not in self.down:
            key = (image_id, backend, source)

            def read():
                record = self._readers[source].get(image_id, backend)
                if record is None:
                    return self._last.get(key)
                self._last[key] = record
                return record

            try:
                return reader.record_view(image_id, backend, read, now,
                                          self.stall_after)
            except _memcache.ServerUnavailable as e:
                # it answered the poll, then stopped: down for this poll
                self.down[source] = str(e)
        return views.error_view(
            image_id, backend, states.UNREACHABLE, '%s (check '
            'progress_memcached_servers or --servers)' % self.down[source])

    def record(self, image_id, backend, source):
        """The record behind the last view read of it, or None."""
        return self._last.get((image_id, backend, source))


def show_views(lookup, image_id, backend, now):
    """The plain record and each backend's record that exists.

    Without --backend, a missing record only shows (as unknown) when
    nothing at all is known of the image.
    """
    found = [view for name, source in lookup.targets(backend)
             for view in [lookup.read(image_id, name, source, now)]
             if view.state != states.UNKNOWN or backend is not None]
    return found or [views.view_of(image_id, None, None, now,
                                   lookup.stall_after)]
