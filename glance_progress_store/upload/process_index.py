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

"""What a glance-api process tells readers about its uploads.

memcached cannot be asked which keys exist without walking the whole
cache, so each process keeps, per server and key prefix, a small index of
its uploads (:class:`ProcessIndex`, written by the process's publisher
thread only: one writer, no race), and the server's registry lists the
index keys. The registry changes only when a process starts or stops, so
``gets``/``cas`` keeps concurrent starts from losing one another. The
key and value layout is in :mod:`glance_progress_store.records`.
"""

import collections
import logging
import os
import socket
import time
import uuid

from glance_progress_store import _memcache
from glance_progress_store import records

LOG = logging.getLogger(__name__)

# Entries an index keeps; past this, the oldest ended ones go first.
MAX_ENTRIES = 2000
# gets/cas rounds before a registration is retried later.
_CAS_ATTEMPTS = 20


class Contended(_memcache.MemcachedError):
    """The registry kept changing under a registration: try again later."""


class ProcessIndex:
    """This process's uploads whose status keys live on one server."""

    def __init__(self, prefix, ttl, retention):
        self.prefix = prefix
        self.key = records.index_key(prefix, uuid.uuid4().hex)
        self.ttl = ttl
        self.retention = retention
        self.registered = False
        self.refresh_at = 0.0  # monotonic
        self._entries = collections.OrderedDict()  # (id, backend) -> ended

    def note(self, image_id, backend, ended):
        """Record an upload's start (ended False) or end; True if changed."""
        key = (image_id, backend)
        old = self._entries.pop(key, KeyError)
        ended_at = time.time() if ended else None
        if old is not KeyError and (old is None) == (ended_at is None):
            self._entries[key] = old  # same state: keep its time
            return False
        self._entries[key] = ended_at
        return True

    def value(self, now):
        """The index's bytes at epoch ``now``, after dropping old entries."""
        for key, ended_at in list(self._entries.items()):
            if ended_at is not None and now - ended_at > self.retention:
                del self._entries[key]
        while len(self._entries) > MAX_ENTRIES:
            ended = next((k for k, e in self._entries.items()
                          if e is not None), None)
            del self._entries[ended or next(iter(self._entries))]
        entries = [records.IndexEntry(i, b, e)
                   for (i, b), e in self._entries.items()]
        return records.index_value(socket.gethostname(), os.getpid(), now,
                                   entries)


def _registry_entries(value):
    if value is None:
        return None
    try:
        return records.parse_registry(value.data)
    except records.BadRecord as e:
        LOG.warning('Replacing a bad upload progress registry: %s', e)
        return {}


def _alive(connection, entries, grace, now):
    """The registry's entries, without indexes gone for longer than
    ``grace`` (their process died without unregistering)."""
    if not entries:
        return entries
    present = connection.get_many(list(entries))
    return {key: registered for key, registered in entries.items()
            if key in present or now - registered < grace}


def _update(connection, prefix, change):
    """Apply ``change(entries) -> entries`` to the registry with cas."""
    key = records.registry_key(prefix)
    for _ in range(_CAS_ATTEMPTS):
        entries = _registry_entries(connection.gets(key))
        if entries is None:
            new = change({})
            if connection.add(key, records.registry_value(new),
                              _memcache.MAX_TTL):
                return
            continue  # another process created it meanwhile
        new = change(entries)
        if connection.cas(key, records.registry_value(new),
                          _memcache.MAX_TTL):
            return
    raise Contended('the registry %s changed %d times in a row'
                    % (key, _CAS_ATTEMPTS))


def register(connection, index):
    """Add ``index`` to its server's registry (and drop dead ones)."""
    now = time.time()

    def add(entries):
        entries = _alive(connection, entries, 2 * index.ttl, now)
        entries[index.key] = now
        return entries

    _update(connection, index.prefix, add)
    index.registered = True


def is_registered(connection, index):
    """Whether the registry still lists ``index`` (it may be evicted)."""
    value = connection.get_many([records.registry_key(index.prefix)])
    entries = _registry_entries(value.get(records.registry_key(
        index.prefix)))
    return bool(entries) and index.key in entries


def unregister(connection, index):
    """Remove ``index`` and its registry entry: a clean stop."""
    def remove(entries):
        entries.pop(index.key, None)
        return entries

    _update(connection, index.prefix, remove)
    connection.delete(index.key)
    index.registered = False
