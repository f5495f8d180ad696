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

from glance_progress_store.read import reader as reader_mod
from glance_progress_store.read import states
from glance_progress_store.read import views
from glance_progress_store import records


class BadServers(Exception):
    """python-memcached cannot use a server address: a usage error."""


class Lookup:
    """Reads views of records; one reader per source, checked every poll."""

    def __init__(self, settings, stall_after):
        self.settings = settings
        self.stall_after = stall_after
        self._readers = {}
        self.down = {}  # source -> why it is unreachable, this poll

    def poll(self):
        """Check every source once; unanswered ones are reported, not read."""
        self.down = {}
        for source in self.settings.sources():
            reader = self._readers.get(source)
            if reader is None:
                reader = self._readers[source] = self._reader(source)
            try:
                reader.check_servers()
            except reader_mod.MemcachedUnavailable as e:
                self.down[source] = str(e)

    @staticmethod
    def _reader(source):
        try:
            return reader_mod.ProgressReader(source.servers, source.prefix)
        except ValueError as e:  # e.g. "[::1]:11211": not the grammar
            raise BadServers('memcached servers %s: %s'
                             % (','.join(source.servers), e)) from e

    def targets(self, backend):
        """(backend, source) pairs to read: all of them without --backend."""
        if backend is not None:
            return [(backend, self.settings.source_of(backend))]
        pairs = [(None, s) for s in self.settings.plain_sources]
        pairs += [(b, s) for b, s in self.settings.backends.items()
                  if s not in self.down]  # the plain pair reports it
        return pairs

    def read(self, image_id, backend, source):
        """(record or None, error view or None)."""
        if source not in self.down:
            try:
                return self._readers[source].get(image_id, backend), None
            except records.BadRecord as e:
                return None, views.error_view(image_id, backend, states.BAD,
                                              str(e))
            except reader_mod.MemcachedUnavailable as e:
                # it answered the poll, then stopped: down for this poll
                self.down[source] = str(e)
        return None, views.error_view(
            image_id, backend, states.UNREACHABLE, '%s (check '
            'progress_memcached_servers or --servers)' % self.down[source])


def show_views(lookup, image_id, backend, now):
    """The plain record and each backend's record that exists.

    Without --backend, a missing record only shows (as unknown) when
    nothing at all is known of the image.
    """
    found = []
    for name, source in lookup.targets(backend):
        record, error = lookup.read(image_id, name, source)
        if error is not None or record is not None or backend is not None:
            found.append(error or views.view_of(
                image_id, name, record, now, lookup.stall_after))
    return found or [views.view_of(image_id, None, None, now,
                                   lookup.stall_after)]
