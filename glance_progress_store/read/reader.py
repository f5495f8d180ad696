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

"""Reading progress records back, for the CLI, dashboards and tests.

A memcached that others can write to must not become code execution in an
operator's shell, so values are taken as raw bytes
(:class:`~glance_progress_store._memcache.Connection` never unpickles or
decompresses) and only what the store writes is accepted: ASCII decimal
sizes and a UTF-8 JSON status.
"""

import contextlib
import re

from glance_progress_store import _memcache
from glance_progress_store.read import states
from glance_progress_store.read import views
from glance_progress_store import records

MAX_STATUS_LENGTH = 4096
_DECIMAL = re.compile(r'[0-9]{1,20}\Z')


def text_value(key, value, limit):
    """A value as text, if it is one the store writes; else BadRecord."""
    if value.flags != 0:
        raise records.BadRecord(
            '%s holds a value this package did not write (memcached flags '
            '%#x: pickled or compressed data is never loaded)'
            % (key, value.flags))
    if len(value.data) > limit:
        raise records.BadRecord('%s holds %d bytes, more than a progress '
                                'record' % (key, len(value.data)))
    try:
        return value.data.decode('utf-8')
    except UnicodeDecodeError:
        raise records.BadRecord('%s is not UTF-8 text' % key)


def parse_status(key, value):
    """The ProgressRecord of a status value as read; BadRecord if not one."""
    return records.ProgressRecord.from_json(
        text_value(key, value, MAX_STATUS_LENGTH))


def record_view(image_id, backend, read, now, stall_after):
    """The one way a read record becomes a View, for every reader.

    ``read()`` returns the record, or None when there is none (the view
    is then ``unknown``); a value this package did not write (BadRecord)
    is shown as ``bad`` with why. A server that does not answer raises
    ``_memcache.ServerUnavailable``: each surface reports that its own
    way.
    """
    try:
        record = read()
    except records.BadRecord as e:
        return views.error_view(image_id, backend, states.BAD, str(e))
    return views.view_of(image_id, backend, record, now, stall_after)


def _size(key, value):
    text = text_value(key, value, 32)
    if not _DECIMAL.match(text):  # str.isdigit() takes '²' too
        raise records.BadRecord('%s is not a decimal size: %r'
                                % (key, text[:40]))
    return int(text)


class ProgressReader:
    """Reads the progress records written by the progress_rbd store.

    Not thread-safe: one reader per thread. Without ``breaker`` a server
    that failed is tried again on the next call, so a long-lived reader
    (watch, a dashboard) sees a restarted memcached at once; with one (a
    :class:`~glance_progress_store.read.breaker.Breaker`, shared by the
    readers of a process) a server known down is not asked until the
    breaker says so, and the read fails at once with ``KnownDown``.
    """

    def __init__(self, servers, prefix='', socket_timeout=3.0,
                 breaker=None):
        self.servers = _memcache.parse_servers(servers)
        self.prefix = prefix
        self._breaker = breaker
        self._connections = [_memcache.Connection(s, socket_timeout)
                             for s in self.servers]

    def check_servers(self):
        """Raise ServerUnavailable unless every server answers."""
        problems = []
        for connection in self._connections:
            try:
                connection.version()
            except _memcache.ServerUnavailable as e:
                problems.append(e)
        if problems:
            raise _memcache.ServerUnavailable.of_all(problems)

    def _get(self, keys):
        by_server = {}
        for key in keys:
            index = _memcache.server_index(key, len(self._connections))
            by_server.setdefault(index, []).append(key)
        values = {}
        for index, server_keys in sorted(by_server.items()):
            connection = self._connections[index]
            with self._guarded(connection.server):
                values.update(connection.get_many(server_keys))
        return values

    def _guarded(self, server):
        if self._breaker is None:
            return contextlib.nullcontext()
        return self._breaker.read(server)

    def get(self, image_id, backend=None):
        """The record of an image (in a backend), or None if there is none.

        :raises: records.BadRecord when the keys hold values that the
                 store did not write; _memcache.ServerUnavailable
        """
        keys = records.keys_for(image_id, backend, self.prefix)
        values = self._get(keys.all())
        status = values.get(keys.status)
        if status is None:
            return None
        record = parse_status(keys.status, status)
        for key in (keys.total, keys.uploading):
            if key in values:
                _size(key, values[key])
        return record

    def close(self):
        for connection in self._connections:
            connection.close()
