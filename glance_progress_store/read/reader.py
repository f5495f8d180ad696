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

import re

from glance_progress_store import _memcache
from glance_progress_store import records

# Flags 0 is what the store writes. python-memcached's text (16) and
# integer (2, 4) flags are what releases before 0.2 wrote: still read, so
# that a rolling upgrade of glance-api nodes shows every upload.
_PLAIN_FLAGS = (0, 2, 4, 16)
MAX_STATUS_LENGTH = 4096
_DECIMAL = re.compile(r'[0-9]{1,20}\Z')


class MemcachedUnavailable(Exception):
    """A memcached server did not answer, or is not a memcached server."""


def text_value(key, value, limit):
    """A value as text, if it is one the store writes; else BadRecord."""
    if value.flags not in _PLAIN_FLAGS:
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


def _size(key, value):
    text = text_value(key, value, 32)
    if not _DECIMAL.match(text):  # str.isdigit() takes '²' too
        raise records.BadRecord('%s is not a decimal size: %r'
                                % (key, text[:40]))
    return int(text)


class ProgressReader:
    """Reads the progress records written by the progress_rbd store.

    Not thread-safe: one reader per thread. A server that failed is tried
    again on the next call, so a long-lived reader (watch, a dashboard)
    sees a restarted memcached at once.
    """

    def __init__(self, servers, prefix='', socket_timeout=3.0):
        self.servers = _memcache.parse_servers(servers)
        self.prefix = prefix
        self._connections = [_memcache.Connection(s, socket_timeout)
                             for s in self.servers]

    def check_servers(self):
        """Raise MemcachedUnavailable unless every server answers."""
        problems = []
        for connection in self._connections:
            try:
                connection.version()
            except _memcache.ServerUnavailable as e:
                problems.append(str(e))
        if problems:
            raise MemcachedUnavailable('; '.join(problems))

    def _get(self, keys):
        by_server = {}
        for key in keys:
            index = _memcache.server_index(key, len(self._connections))
            by_server.setdefault(index, []).append(key)
        values = {}
        for index, server_keys in sorted(by_server.items()):
            try:
                values.update(self._connections[index].get_many(server_keys))
            except _memcache.ServerUnavailable as e:
                raise MemcachedUnavailable(str(e)) from e
        return values

    def get(self, image_id, backend=None):
        """The record of an image (in a backend), or None if there is none.

        :raises: records.BadRecord when the keys hold values that the
                 store did not write; MemcachedUnavailable
        """
        keys = records.keys_for(image_id, backend, self.prefix)
        values = self._get(keys.all())
        status = values.get(keys.status)
        if status is None:
            return None
        record = records.ProgressRecord.from_json(
            text_value(keys.status, status, MAX_STATUS_LENGTH))
        for key in (keys.total, keys.uploading):
            if key in values:
                _size(key, values[key])
        return record

    def raw_sizes(self, image_id, backend=None):
        """The two size keys as the seed's dashboards read them."""
        keys = records.keys_for(image_id, backend, self.prefix)
        values = self._get([keys.total, keys.uploading])
        return tuple(_size(k, values[k]) if k in values else None
                     for k in (keys.total, keys.uploading))

    def close(self):
        for connection in self._connections:
            connection.close()
