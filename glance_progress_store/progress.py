"""Publishing upload progress to memcached without ever slowing an upload.

An upload only records its latest state in memory (:meth:`Publisher.submit`
never blocks on the network); one background thread per process and
server list sends the latest state of every upload to memcached. A dead,
refusing or frozen memcached therefore costs the upload nothing but the
bounded wait for its final record (``progress_socket_timeout``), and
records that could not be written are retried, newest value first, until
they are written or their TTL has passed.
"""

import dataclasses
import logging
import os
import threading
import time

import memcache

from glance_progress_store import records

LOG = logging.getLogger(__name__)

# Uploads whose latest state is waiting to be sent. Each holds a few
# hundred bytes; past this many, the oldest non-final ones are dropped.
MAX_PENDING = 10000
_RETRY_FIRST = 0.25
_RETRY_MAX = 5.0


@dataclasses.dataclass
class _Pending(object):
    values: dict
    ttl: int
    final: bool
    expires_at: float
    retry_at: float = 0.0
    failures: int = 0


@dataclasses.dataclass
class PublisherStats(object):
    updates_sent: int = 0
    dropped: int = 0


class Publisher(object):
    """Sends the latest progress of every upload from one background thread.

    The memcached client is created lazily by that thread, once per
    process: glance builds a new Store object for every request, so
    nothing here may live on the Store.
    """

    def __init__(self, servers, socket_timeout):
        self.servers = tuple(servers)
        self.socket_timeout = socket_timeout
        self.stats = PublisherStats()
        self._cond = threading.Condition(threading.Lock())
        self._pending = {}
        self._in_flight = set()
        self._warned = set()
        self._thread = None

    def submit(self, token, values, ttl, final=False):
        """Record the newest state of an upload; returns at once."""
        now = time.time()
        with self._cond:
            self._pending[token] = _Pending(values, ttl, final, now + ttl)
            if len(self._pending) > MAX_PENDING:
                self._drop_oldest()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name='glance-progress-publisher',
                    daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, token, timeout):
        """Wait, at most `timeout` seconds, until `token`'s state is sent."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while token in self._pending or token in self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _drop_oldest(self):
        token = next((t for t, e in self._pending.items() if not e.final),
                     next(iter(self._pending)))
        del self._pending[token]
        self.stats.dropped += 1
        LOG.warning('More than %d uploads wait for memcached; dropped the '
                    'pending progress of %s', MAX_PENDING, token[1])

    def _take_ready(self):
        while True:
            now = time.time()
            ready = {t: e for t, e in self._pending.items()
                     if e.retry_at <= now}
            if ready:
                for token in ready:
                    del self._pending[token]
                self._in_flight.update(ready)
                return ready
            wake = min((e.retry_at for e in self._pending.values()),
                       default=None)
            self._cond.wait(None if wake is None else max(0.0, wake - now))

    def _run(self):
        client = memcache.Client(
            list(self.servers), socket_timeout=self.socket_timeout,
            dead_retry=_RETRY_FIRST)
        while True:
            with self._cond:
                batch = self._take_ready()
            failed = self._send(client, batch)
            with self._cond:
                self._in_flight.difference_update(batch)
                for token, entry in batch.items():
                    if token in failed:
                        self._retry_later(token, entry)
                    else:
                        self.stats.updates_sent += 1
                        if entry.final:
                            self._warned.discard(token)
                self._cond.notify_all()

    def _send(self, client, batch):
        """The one place memcached errors are caught: returns failed tokens."""
        failed = set()
        by_ttl = {}
        for token, entry in batch.items():
            by_ttl.setdefault(entry.ttl, {}).update(entry.values)
        for ttl, values in by_ttl.items():
            try:
                not_stored = set(client.set_multi(values, time=ttl))
            except Exception as e:  # never let the publisher die
                LOG.debug('memcached set_multi failed: %s', e)
                not_stored = set(values)
            # python-memcached does not report the keys of a server that
            # fails during set_multi (it only marks it dead): resend them
            # all, the newest values win anyway.
            now = time.time()
            if any(server.deaduntil > now for server in client.servers):
                not_stored = set(values)
            if not_stored:
                failed.update(t for t, e in batch.items()
                              if e.ttl == ttl and not_stored & set(e.values))
        return failed

    def _retry_later(self, token, entry):
        now = time.time()
        if token not in self._warned:
            self._warned.add(token)
            LOG.warning('Could not publish upload progress of %s to '
                        'memcached %s; the upload goes on and the record '
                        'will be retried', token[1], ','.join(self.servers))
        if now >= entry.expires_at:
            self._warned.discard(token)
            return
        if token in self._pending:
            return  # a newer state supersedes it
        entry.failures += 1
        entry.retry_at = now + min(_RETRY_MAX,
                                   _RETRY_FIRST * 2 ** (entry.failures - 1))
        self._pending[token] = entry


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


class UploadProgress(object):
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
        self._publisher.submit(self._token, values, self._config.ttl, final)
        if final:
            self._publisher.flush(self._token, self._config.socket_timeout)
