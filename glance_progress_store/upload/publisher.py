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

"""Publishing upload progress to memcached without ever slowing an upload.

An upload only records its latest state in memory (:meth:`Publisher.submit`
never blocks on the network); one background thread per process and
server list sends the latest state of every upload to memcached. A dead,
refusing or frozen memcached therefore costs the upload nothing but the
bounded wait for its final record (``progress_socket_timeout``).

Each server is a :class:`_Lane` of its own: a server that fails holds back
only its own keys, and is probed (``version``, which stores nothing) with
a backoff until it answers again. Writes to it resume only a moment
(:data:`SETTLE`) after it answers, and that is what keeps the final state
in memcached after a freeze: a set sent before the freeze sits unread in
the server's socket buffer and is executed when the server resumes, on
its own connection, in any order with newer ones; once the server answers
a probe it has those behind it, and everything sent after the pause is
newer. Records that could not be written are retried, newest value first,
until they are written or their retry window (the TTL, at most
:data:`MAX_RETRY_WINDOW`) has passed.
"""

import atexit
import dataclasses
import logging
import os
import threading
import time

from glance_progress_store import _memcache
from glance_progress_store import records
from glance_progress_store.upload import index as index_mod

LOG = logging.getLogger(__name__)

# Uploads whose latest state is waiting to be sent. Each holds a few
# hundred bytes; past this many, the oldest non-final ones are dropped.
MAX_PENDING = 10000
# Tokens sent to one server in one set_multi.
MAX_BATCH = 500
# Backoff between probes of a failed server.
_RETRY_FIRST = 0.25
_RETRY_MAX = 5.0
# How long after a failed server answers again before writing to it.
SETTLE = 1.0
# A record that could not be written is given up after this long.
MAX_RETRY_WINDOW = 3600
# At most one "dropped" or "publisher error" warning in this many seconds.
_WARN_EVERY = 60.0


@dataclasses.dataclass
class _Entry:
    """The newest values of one upload for one server."""

    values: dict
    ttl: int
    final: bool
    give_up_at: float  # monotonic


@dataclasses.dataclass
class PublisherStats:
    updates_sent: int = 0  # (upload, server) states written
    index_writes: int = 0  # discovery index values written
    probes: int = 0
    server_failures: int = 0


class _Lane:
    """One memcached server: its queue and whether it may be written to."""

    def __init__(self, server, socket_timeout):
        self.server = server
        self.socket_timeout = socket_timeout
        self.connection = None  # created by the publisher thread
        self.pending = {}  # token -> _Entry, oldest first
        self.in_flight = {}  # token -> _Entry being sent
        self.ready_at = 0.0  # monotonic: no write before
        self.needs_probe = False
        self.failures = 0
        self.indexes = {}  # prefix -> index.ProcessIndex on this server
        self.to_register = {}  # index key -> ProcessIndex to (re)register

    def due_at(self):
        """When this lane has work, or None."""
        if not self.pending and not self.to_register:
            return None
        return self.ready_at

    def failed(self, now):
        self.failures += 1
        self.needs_probe = True
        self.ready_at = now + min(_RETRY_MAX,
                                  _RETRY_FIRST * 2 ** (self.failures - 1))
        if self.connection is not None:
            self.connection.close()

    def answered(self, now):
        self.failures = 0
        self.needs_probe = False
        self.ready_at = now + SETTLE


class Publisher:
    """Sends the latest progress of every upload from one background thread.

    The memcached connections are created by that thread, once per
    process: glance builds a new Store object for every request, so
    nothing here may live on the Store.
    """

    def __init__(self, servers, socket_timeout):
        self.servers = _memcache.parse_servers(servers)
        self.socket_timeout = socket_timeout
        self.stats = PublisherStats()
        self._cond = threading.Condition(threading.Lock())
        self._lanes = [_Lane(s, socket_timeout) for s in self.servers]
        self._warned = set()
        self._last_warning = {}
        self._thread = None

    def submit(self, token, values, ttl, final=False, index=None):
        """Record the newest state of an upload; returns at once.

        With ``index`` = (index TTL, retention), ``token`` is (prefix,
        image id, backend) and the upload is listed in this process's
        index for discovery; the index is written when the upload starts
        and ends, never per chunk.
        """
        give_up_at = time.monotonic() + min(ttl, MAX_RETRY_WINDOW)
        split = {}
        for key, value in values.items():
            number = _memcache.server_index(key, len(self._lanes))
            split.setdefault(number, {})[key] = value
        with self._cond:
            for number, lane_values in split.items():
                lane = self._lanes[number]
                lane.pending.pop(token, None)  # newest last
                lane.pending[token] = _Entry(lane_values, ttl, final,
                                             give_up_at)
                if len(lane.pending) > MAX_PENDING:
                    self._drop_oldest(lane)
            if index is not None:
                self._note(token, final, *index)
            if self._thread is None or not self._thread.is_alive():
                for lane in self._lanes:  # what a dead thread was sending
                    self._requeue(lane, lane.in_flight)
                    lane.in_flight = {}
                self._thread = threading.Thread(
                    target=self._run, name='glance-progress-publisher',
                    daemon=True)
                self._thread.start()
            self._cond.notify()

    def flush(self, token, timeout, skip_down=False):
        """Wait, at most `timeout` s, until `token`'s state is sent.

        With ``skip_down`` (the end of an upload), the keys of a server
        known to be down are not waited for: they are retried in the
        background, and the upload does not pay the timeout for them.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                waiting = [lane for lane in self._lanes
                           if token in lane.in_flight or (
                               token in lane.pending and
                               not (skip_down and lane.needs_probe))]
                if not waiting:
                    return not any(token in lane.pending
                                   for lane in self._lanes)
                remaining = deadline - now
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)

    def _note(self, token, final, ttl, retention):
        prefix, image_id, backend = token
        status_key = records.keys_for(image_id, backend, prefix).status
        lane = self._lanes[_memcache.server_index(status_key,
                                                  len(self._lanes))]
        index = lane.indexes.get(prefix)
        if index is None:
            index = lane.indexes[prefix] = index_mod.ProcessIndex(
                prefix, ttl, retention)
        index.ttl, index.retention = ttl, retention
        if index.note(image_id, backend, final):
            self._queue_index(lane, index, time.monotonic())

    def _queue_index(self, lane, index, now):
        """Write the index with the next batch; refresh it before its TTL."""
        lane.pending.pop(('index', index.key), None)
        lane.pending[('index', index.key)] = _Entry(
            {index.key: index.value(time.time())}, index.ttl, False,
            now + index.ttl)
        index.refresh_at = now + index.ttl / 3.0
        if not index.registered:
            lane.to_register[index.key] = index

    def _drop_oldest(self, lane):
        token = next((t for t, e in lane.pending.items() if not e.final),
                     next(iter(lane.pending)))
        del lane.pending[token]
        self._warned.discard(token)
        self._warn_rarely('dropped', 'More than %d uploads wait for '
                          'memcached %s; dropping the oldest pending '
                          'progress (%s)', MAX_PENDING, lane.server,
                          token[1])

    def _warn_rarely(self, kind, message, *args, exc_info=False):
        now = time.monotonic()
        if now - self._last_warning.get(kind, -_WARN_EVERY) >= _WARN_EVERY:
            self._last_warning[kind] = now
            LOG.warning(message, *args, exc_info=exc_info)

    def _next_work(self):
        """(lane, batch, or None for a probe, or a ProcessIndex to register),
        waiting until there is one."""
        while True:
            now = time.monotonic()
            wake = None
            for lane in self._lanes:
                for index in lane.indexes.values():
                    if index.refresh_at <= now:
                        self._queue_index(lane, index, now)
                        # it may have been evicted: check it is listed
                        lane.to_register[index.key] = index
                    wake = index.refresh_at if wake is None else min(
                        wake, index.refresh_at)
                due = lane.due_at()
                if due is None:
                    continue
                if due <= now:
                    if lane.needs_probe:
                        return lane, None
                    if lane.to_register:
                        return lane, lane.to_register.pop(
                            next(iter(lane.to_register)))
                    batch = {}
                    for token in list(lane.pending)[:MAX_BATCH]:
                        batch[token] = lane.pending.pop(token)
                    lane.in_flight = batch
                    return lane, batch
                wake = due if wake is None else min(wake, due)
            self._cond.wait(None if wake is None else wake - now)

    def _run(self):
        while True:
            try:
                with self._cond:
                    lane, batch = self._next_work()
                if lane.connection is None:
                    lane.connection = _memcache.Connection(
                        lane.server, self.socket_timeout)
                if batch is None:
                    self._probe(lane)
                elif isinstance(batch, index_mod.ProcessIndex):
                    self._register(lane, batch)
                else:
                    self._send(lane, batch)
            except Exception:  # the thread must never die
                self._warn_rarely('crash', 'Upload progress publisher '
                                  'error; it carries on', exc_info=True)
                with self._cond:
                    for lane in self._lanes:
                        self._requeue(lane, lane.in_flight)
                        lane.in_flight = {}
                        lane.failed(time.monotonic())
                    self._cond.notify_all()

    def _probe(self, lane):
        self.stats.probes += 1
        try:
            lane.connection.version()
            ok = True
        except _memcache.ServerUnavailable as e:
            LOG.debug('memcached probe failed: %s', e)
            ok = False
        with self._cond:
            now = time.monotonic()
            if ok:
                lane.answered(now)
            else:
                lane.failed(now)
            self._expire(lane, now)
            self._cond.notify_all()

    def _register(self, lane, index):
        """List the index in its server's registry, or check it is."""
        try:
            if not (index.registered and
                    index_mod.is_registered(lane.connection, index)):
                index_mod.register(lane.connection, index)
            return
        except _memcache.ServerUnavailable as e:
            LOG.debug('upload index registration failed: %s', e)
            with self._cond:
                lane.failed(time.monotonic())
        except index_mod.Contended as e:
            LOG.debug('%s; retried later', e)
        with self._cond:
            lane.to_register[index.key] = index
            self._cond.notify_all()

    def unregister_all(self, timeout):
        """A clean stop: remove this process's indexes, within ``timeout``
        seconds per server. Called at exit."""
        for lane in self._lanes:
            with self._cond:
                indexes = [i for i in lane.indexes.values() if i.registered]
            if not indexes:
                continue
            connection = _memcache.Connection(lane.server,
                                              min(timeout,
                                                  self.socket_timeout))
            try:
                for index in indexes:
                    index_mod.unregister(connection, index)
            except _memcache.MemcachedError as e:
                LOG.debug('upload index not removed: %s', e)
            finally:
                connection.close()

    def _send(self, lane, batch):
        """The one place a failed write is handled: the lane backs off."""
        by_ttl = {}
        for entry in batch.values():
            by_ttl.setdefault(entry.ttl, {}).update(entry.values)
        error = None
        try:
            for ttl, values in by_ttl.items():
                lane.connection.set_many(values, min(ttl, _memcache.MAX_TTL))
        except _memcache.ServerUnavailable as e:
            error = e
        with self._cond:
            lane.in_flight = {}
            if error is None:
                indexes = sum(1 for t in batch if t[0] == 'index')
                self.stats.index_writes += indexes
                self.stats.updates_sent += len(batch) - indexes
                self._warned.difference_update(
                    t for t, e in batch.items() if e.final)
            else:
                LOG.debug('memcached set failed: %s', error)
                self.stats.server_failures += 1
                lane.failed(time.monotonic())
                self._requeue(lane, batch)
                for token in batch:
                    self._warn_once(token, lane)
            self._cond.notify_all()

    def _requeue(self, lane, batch):
        """Put failed entries back, unless a newer state superseded them."""
        for token, entry in batch.items():
            if token not in lane.pending:
                lane.pending[token] = entry

    def _expire(self, lane, now):
        for token in [t for t, e in lane.pending.items()
                      if e.give_up_at <= now]:
            del lane.pending[token]
            self._warned.discard(token)
            LOG.debug('giving up the progress record of %s on %s',
                      token[1], lane.server)

    def _warn_once(self, token, lane):
        if token not in self._warned:
            self._warned.add(token)
            LOG.warning('Could not publish upload progress of %s to '
                        'memcached %s; the upload goes on and the record '
                        'will be retried', token[1], lane.server)


_PUBLISHERS = {}
_PUBLISHERS_LOCK = threading.Lock()


def get_publisher(servers, socket_timeout):
    """The process's publisher for this server list."""
    key = (tuple(servers), socket_timeout)
    with _PUBLISHERS_LOCK:
        publisher = _PUBLISHERS.get(key)
        if publisher is None:
            publisher = _PUBLISHERS[key] = Publisher(servers, socket_timeout)
        return publisher


def _forget_publishers_after_fork():
    # Threads do not survive fork() and the locks may be held: a child
    # (uWSGI prefork worker) builds its own publisher on first use.
    global _PUBLISHERS_LOCK
    _PUBLISHERS.clear()
    _PUBLISHERS_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_publishers_after_fork)


@atexit.register
def _unregister_at_exit():
    # A process that stops cleanly takes its uploads out of discovery at
    # once; a killed one's index expires after its TTL.
    for publisher in list(_PUBLISHERS.values()):
        publisher.unregister_all(timeout=1.0)


class UploadProgress:
    """The progress of one upload; lives in the add() call, never on self."""

    def __init__(self, config, image_id, backend, total):
        self.bytes = 0
        self.total = total or None
        self._image_id = str(image_id)
        self._backend = backend
        self._config = config
        self._started_at = time.time()
        self._last_published = 0.0
        self._publisher = None
        if config.enabled:
            self._publisher = get_publisher(config.servers,
                                            config.socket_timeout)
            keys = [records.keys_for(image_id, None, config.key_prefix)]
            if backend:
                keys.append(records.keys_for(image_id, backend,
                                             config.key_prefix))
            self._keys = keys
            self._token = (config.key_prefix, self._image_id, backend)

    def start(self):
        """Publish the first record, once the RBD image exists.

        Not done at construction: an upload refused as a duplicate must
        leave the existing image's record untouched.
        """
        self._publish(records.UPLOADING)

    def advance(self, nbytes):
        """Count bytes that Ceph has acknowledged."""
        self.bytes += nbytes
        if (self._publisher is not None and
                time.monotonic() - self._last_published >=
                self._config.min_interval):
            self._publish(records.UPLOADING)

    def finalizing(self):
        self._publish(records.FINALIZING)

    def stored(self, size):
        self.bytes = self.total = size
        self._publish(records.STORED, final=True)

    def failed(self, reason):
        self._publish(records.FAILED, reason=reason, final=True)

    def _publish(self, state, reason=None, final=False):
        if self._publisher is None:
            return
        self._last_published = time.monotonic()
        record = records.ProgressRecord(
            state=state, bytes=self.bytes, total=self.total,
            backend=self._backend, started_at=self._started_at,
            updated_at=time.time(), reason=reason)
        values = {}
        for keys in self._keys:
            values.update(records.key_values(keys, record))
        index = None
        if self._config.discovery:
            index = (self._config.index_ttl, self._config.index_retention)
        self._publisher.submit(self._token, values, self._config.ttl, final,
                               index=index)
        if final:
            self._publisher.flush(self._token, self._config.socket_timeout,
                                  skip_down=True)
