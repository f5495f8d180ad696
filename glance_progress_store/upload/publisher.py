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

An upload only records its latest state in memory
(:meth:`Publisher.submit` never blocks on the network); one background
thread per process and server list sends the latest state of every
upload to memcached. A dead, refusing or frozen memcached therefore costs
the upload nothing but the bounded wait for its final record
(``progress_socket_timeout``).

Each server is a :class:`_ServerQueue` of its own: a server that fails
holds back only its own keys, and is probed (``version``, which stores
nothing) with a backoff until it answers again. Writes to it resume only a
moment (:data:`SETTLE`) after it answers, and that is what keeps the final
state in memcached after a freeze: a set sent before the freeze sits
unread in the server's socket buffer and is executed when the server
resumes, on its own connection, in any order with newer ones; once the
server answers a probe it has those behind it, and everything sent after
the pause is newer. Records that could not be written are retried, newest
value first, until they are written or their retry window (the TTL, at
most :data:`MAX_RETRY_WINDOW`) has passed.

What an upload publishes is :mod:`glance_progress_store.upload.progress`'s
business; this module only carries values to their servers.
"""

import atexit
import dataclasses
import logging
import os
import threading
import time
import typing

from glance_progress_store import _memcache
from glance_progress_store import records
from glance_progress_store.upload import process_index

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


class UploadKey(typing.NamedTuple):
    """Which upload a state belongs to: one entry per upload and server."""

    prefix: str
    image_id: str
    backend: typing.Optional[str]


class IndexKey(typing.NamedTuple):
    """A process's discovery index, sent in the same batches as records."""

    key: str


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


class _ServerQueue:
    """One memcached server: its queue and whether it may be written to."""

    def __init__(self, server):
        self.server = server
        # made by the publisher thread, and usable only by that thread
        self.connection = None
        self.pending = {}  # UploadKey or IndexKey -> _Entry, oldest first
        self.in_flight = {}  # UploadKey or IndexKey -> _Entry being sent
        self.ready_at = 0.0  # monotonic: no write before
        self.needs_probe = False
        self.failures = 0
        self.indexes = {}  # prefix -> ProcessIndex on this server
        self.to_register = {}  # index key -> ProcessIndex to (re)register

    def due_at(self):
        """When this queue has work, or None."""
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


# What the publisher thread does next for a server.
_PROBE, _REGISTER, _SEND = 'probe', 'register', 'send'


@dataclasses.dataclass
class _Work:
    kind: str  # _PROBE, _REGISTER or _SEND
    queue: _ServerQueue
    index: object = None  # _REGISTER: the ProcessIndex
    batch: dict = None  # _SEND: key -> _Entry


class Publisher:
    """Sends the latest progress of every upload from one background thread.

    The memcached connections are created by that thread, once per
    process: glance builds a new Store object for every request, so
    nothing here may live on the Store. A connection is bound to the
    thread that made it (python-memcached's client is a thread-local), so
    a thread restarted after dying opens new ones.
    """

    def __init__(self, servers, socket_timeout):
        self.servers = _memcache.parse_servers(servers)
        self.socket_timeout = socket_timeout
        self.stats = PublisherStats()
        self._cond = threading.Condition(threading.Lock())
        self._queues = [_ServerQueue(s) for s in self.servers]
        self._warned = set()
        self._last_warning = {}
        self._thread = None

    def submit(self, upload, values, ttl, final=False, index=None):
        """Record the newest state of an upload; returns at once.

        ``upload`` is its :class:`UploadKey`. With ``index`` = (index
        TTL, retention), the upload is listed in this process's index for
        discovery; the index is written when the upload starts and ends,
        never per chunk.
        """
        upload = UploadKey(*upload)
        give_up_at = time.monotonic() + min(ttl, MAX_RETRY_WINDOW)
        split = {}
        for memcached_key, value in values.items():
            number = _memcache.server_index(memcached_key, len(self._queues))
            split.setdefault(number, {})[memcached_key] = value
        with self._cond:
            for number, queue_values in split.items():
                queue = self._queues[number]
                queue.pending.pop(upload, None)  # newest last
                queue.pending[upload] = _Entry(queue_values, ttl, final,
                                               give_up_at)
                if len(queue.pending) > MAX_PENDING:
                    self._drop_oldest(queue)
            if index is not None:
                self._note(upload, final, *index)
            if self._thread is None or not self._thread.is_alive():
                for queue in self._queues:  # what a dead thread was sending
                    self._requeue(queue, queue.in_flight)
                    queue.in_flight = {}
                    # bound to the dead thread: the new one opens its own
                    if queue.connection is not None:
                        queue.connection.close()
                        queue.connection = None
                self._thread = threading.Thread(
                    target=self._run, name='glance-progress-publisher',
                    daemon=True)
                self._thread.start()
            self._cond.notify()

    def flush(self, upload, timeout, skip_down=False):
        """Wait, at most `timeout` s, until `upload`'s state is sent.

        With ``skip_down`` (the end of an upload), the keys of a server
        known to be down are not waited for: they are retried in the
        background, and the upload does not pay the timeout for them.
        """
        upload = UploadKey(*upload)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                waiting = [queue for queue in self._queues
                           if upload in queue.in_flight or (
                               upload in queue.pending and
                               not (skip_down and queue.needs_probe))]
                if not waiting:
                    return not any(upload in queue.pending
                                   for queue in self._queues)
                remaining = deadline - now
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)

    def _note(self, upload, final, ttl, retention):
        status_key = records.keys_for(upload.image_id, upload.backend,
                                      upload.prefix).status
        queue = self._queues[_memcache.server_index(status_key,
                                                    len(self._queues))]
        index = queue.indexes.get(upload.prefix)
        if index is None:
            index = queue.indexes[upload.prefix] = (
                process_index.ProcessIndex(upload.prefix, ttl, retention))
        index.ttl, index.retention = ttl, retention
        if index.note(upload.image_id, upload.backend, final):
            self._queue_index(queue, index, time.monotonic())

    def _queue_index(self, queue, index, now):
        """Write the index with the next batch; refresh it before its TTL."""
        key = IndexKey(index.key)
        queue.pending.pop(key, None)
        queue.pending[key] = _Entry(
            {index.key: index.value(time.time())}, index.ttl, False,
            now + index.ttl)
        index.refresh_at = now + index.ttl / 3.0
        if not index.registered:
            queue.to_register[index.key] = index

    def _drop_oldest(self, queue):
        key = next((k for k, e in queue.pending.items() if not e.final),
                   next(iter(queue.pending)))
        del queue.pending[key]
        self._warned.discard(key)
        self._warn_rarely('dropped', 'More than %d uploads wait for '
                          'memcached %s; dropping the oldest pending '
                          'progress (%s)', MAX_PENDING, queue.server,
                          _name(key))

    def _warn_rarely(self, kind, message, *args, exc_info=False):
        now = time.monotonic()
        if now - self._last_warning.get(kind, -_WARN_EVERY) >= _WARN_EVERY:
            self._last_warning[kind] = now
            LOG.warning(message, *args, exc_info=exc_info)

    def _next_work(self):
        """The next :class:`_Work`, waiting until there is one."""
        while True:
            now = time.monotonic()
            wake = None
            for queue in self._queues:
                for index in queue.indexes.values():
                    if index.refresh_at <= now:
                        self._queue_index(queue, index, now)
                        # it may have been evicted: check it is listed
                        queue.to_register[index.key] = index
                    wake = index.refresh_at if wake is None else min(
                        wake, index.refresh_at)
                due = queue.due_at()
                if due is None:
                    continue
                if due <= now:
                    if queue.needs_probe:
                        return _Work(_PROBE, queue)
                    if queue.to_register:
                        return _Work(_REGISTER, queue,
                                     index=queue.to_register.pop(
                                         next(iter(queue.to_register))))
                    batch = {}
                    for key in list(queue.pending)[:MAX_BATCH]:
                        batch[key] = queue.pending.pop(key)
                    queue.in_flight = batch
                    return _Work(_SEND, queue, batch=batch)
                wake = due if wake is None else min(wake, due)
            self._cond.wait(None if wake is None else wake - now)

    def _run(self):
        while True:
            try:
                with self._cond:
                    work = self._next_work()
                queue = work.queue
                if queue.connection is None:
                    queue.connection = _memcache.Connection(
                        queue.server, self.socket_timeout)
                if work.kind == _PROBE:
                    self._probe(queue)
                elif work.kind == _REGISTER:
                    self._register(queue, work.index)
                else:
                    self._send(queue, work.batch)
            except Exception:  # the thread must never die
                self._warn_rarely('crash', 'Upload progress publisher '
                                  'error; it carries on', exc_info=True)
                with self._cond:
                    for queue in self._queues:
                        self._requeue(queue, queue.in_flight)
                        queue.in_flight = {}
                        queue.failed(time.monotonic())
                    self._cond.notify_all()

    def _probe(self, queue):
        self.stats.probes += 1
        try:
            queue.connection.version()
            ok = True
        except _memcache.ServerUnavailable as e:
            LOG.debug('memcached probe failed: %s', e)
            ok = False
        with self._cond:
            now = time.monotonic()
            if ok:
                queue.answered(now)
            else:
                queue.failed(now)
                # the uploads waiting for this server, even those whose
                # first write never went out (a failed index registration
                # comes first when memcached is down from the start)
                for key in queue.pending:
                    if isinstance(key, UploadKey):
                        self._warn_once(key, queue)
            self._expire(queue, now)
            self._cond.notify_all()

    def _register(self, queue, index):
        """List the index in its server's registry, or check it is."""
        try:
            if not (index.registered and
                    process_index.is_registered(queue.connection, index)):
                process_index.register(queue.connection, index)
            return
        except _memcache.ServerUnavailable as e:
            LOG.debug('upload index registration failed: %s', e)
            with self._cond:
                queue.failed(time.monotonic())
        except process_index.Contended as e:
            LOG.debug('%s; retried later', e)
        with self._cond:
            queue.to_register[index.key] = index
            self._cond.notify_all()

    def unregister_all(self, timeout):
        """A clean stop: remove this process's indexes, within ``timeout``
        seconds per server. Called at exit."""
        for queue in self._queues:
            with self._cond:
                indexes = [i for i in queue.indexes.values() if i.registered]
            if not indexes:
                continue
            connection = _memcache.Connection(
                queue.server, min(timeout, self.socket_timeout))
            try:
                for index in indexes:
                    process_index.unregister(connection, index)
            except _memcache.MemcachedError as e:
                LOG.debug('upload index not removed: %s', e)
            finally:
                connection.close()

    def _send(self, queue, batch):
        """The one place a failed write is handled: the queue backs off."""
        by_ttl = {}
        for entry in batch.values():
            by_ttl.setdefault(entry.ttl, {}).update(entry.values)
        error = None
        try:
            for ttl, values in by_ttl.items():
                queue.connection.set_many(values,
                                          min(ttl, _memcache.MAX_TTL))
        except _memcache.ServerUnavailable as e:
            error = e
        with self._cond:
            queue.in_flight = {}
            if error is None:
                indexes = sum(1 for k in batch if isinstance(k, IndexKey))
                self.stats.index_writes += indexes
                self.stats.updates_sent += len(batch) - indexes
                self._warned.difference_update(
                    k for k, e in batch.items() if e.final)
            else:
                LOG.debug('memcached set failed: %s', error)
                self.stats.server_failures += 1
                queue.failed(time.monotonic())
                self._requeue(queue, batch)
                for key in batch:
                    self._warn_once(key, queue)
            self._cond.notify_all()

    def _requeue(self, queue, batch):
        """Put failed entries back, unless a newer state superseded them."""
        for key, entry in batch.items():
            if key not in queue.pending:
                queue.pending[key] = entry

    def _expire(self, queue, now):
        for key in [k for k, e in queue.pending.items()
                    if e.give_up_at <= now]:
            del queue.pending[key]
            self._warned.discard(key)
            LOG.debug('giving up the progress record of %s on %s',
                      _name(key), queue.server)

    def _warn_once(self, key, queue):
        if key not in self._warned:
            self._warned.add(key)
            LOG.warning('Could not publish upload progress of %s to '
                        'memcached %s; the upload goes on and the record '
                        'will be retried', _name(key), queue.server)


def _name(key):
    """What a log line calls a queued item: the image id, or the index."""
    if isinstance(key, IndexKey):
        return 'the upload index %s' % key.key
    return key.image_id


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
