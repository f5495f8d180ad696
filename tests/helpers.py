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

"""Shared pieces of the store tests: configuring glance_store, data, checks."""

import contextlib
import hashlib
import io
import os
import shlex
import threading
import time

from oslo_config import cfg

import glance_store
from glance_store import multi_backend

import testbed  # tools/ is on sys.path (tests/conftest.py)

from glance_progress_store.read import reader as reader_mod
from glance_progress_store import records

POOL = 'images'
POOL2 = 'images2'
MiB = 1024 * 1024
CHUNK_MIB = 1  # small chunks: many chunks per test image


def base_options(ceph, memcached, pool=POOL):
    return {
        'rbd_store_ceph_conf': ceph.conf_path,
        'rbd_store_pool': pool,
        'rbd_store_user': 'admin',
        'rbd_store_chunk_size': CHUNK_MIB,
        'progress_memcached_servers': [memcached.address],
        'progress_socket_timeout': 0.3,
    }


@contextlib.contextmanager
def single_store_conf(ceph, memcached):
    """Yields make(**options) -> the store for scheme rbd.

    Configured as an operator does: [glance_store] stores = progress_rbd,
    default_store = rbd, then loaded through glance_store's create_stores.
    """
    conf = cfg.ConfigOpts()
    conf([], project='glance-progress-tests', default_config_files=[])
    glance_store.register_opts(conf)

    def make(**options):
        values = dict(base_options(ceph, memcached),
                      stores=['progress_rbd'], default_store='rbd')
        values.update(options)
        for name, value in values.items():
            conf.set_override(name, value, group='glance_store')
        glance_store.create_stores(conf)
        store = glance_store.get_store_from_scheme('rbd')
        store.test_conf = conf
        return store

    yield make


BACKENDS = {'ceph1': POOL, 'ceph2': POOL2}


@contextlib.contextmanager
def multi_store_conf(ceph, memcached):
    """Yields make(**options) -> {backend: store} for two backends.

    glance_store reads enabled_backends from the global CONF, so this uses
    it, exactly as glance-api does, and clears what it set afterwards.
    """
    conf = cfg.CONF
    try:
        conf.register_opt(cfg.DictOpt('enabled_backends'))
    except cfg.DuplicateOptError:
        pass
    conf([], project='glance-progress-tests', default_config_files=[])

    def make(**options):
        conf.set_override('enabled_backends',
                          {b: 'progress_rbd' for b in BACKENDS})
        multi_backend.register_store_opts(conf)
        for backend, pool in BACKENDS.items():
            values = base_options(ceph, memcached, pool)
            values.update(options)
            for name, value in values.items():
                conf.set_override(name, value, group=backend)
        conf.set_override('default_backend', 'ceph1', group='glance_store')
        multi_backend.create_multi_stores(conf)
        return {b: multi_backend.get_store_from_store_identifier(b)
                for b in BACKENDS}

    try:
        yield make
    finally:
        conf.clear_override('enabled_backends')
        for backend in BACKENDS:
            for name in base_options(ceph, memcached):
                conf.clear_override(name, group=backend)


@contextlib.contextmanager
def kept_running(memcached):
    """Yields a testbed.Memcached; afterwards it runs and answers again,
    whatever the test did to it (stopped, killed, paused)."""
    yield memcached
    memcached.start()  # no-op when it runs
    memcached.resume()


def add_single(store, image_id, data, size, verifier=None):
    """Upload through glance_store's own single-store entry point."""
    return glance_store.add_to_backend_with_multihash(
        store.test_conf, image_id, data, size, 'sha512', scheme='rbd',
        verifier=verifier)


def add_multi(backend, image_id, data, size, verifier=None):
    return multi_backend.add_with_multihash(
        cfg.CONF, image_id, data, size, backend, 'sha512', verifier=verifier)


def payload(size, seed=0):
    """Deterministic, incompressible-looking bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha512(b'%d-%d' % (seed, counter)).digest() * 64
        counter += 1
    return bytes(out[:size])


class SlowReader(io.RawIOBase):
    """A source that hands out data in small reads, with a pause each.

    glance reads the request body through a file-like object; pausing
    makes an upload last long enough for a concurrent reader to see it.
    """

    def __init__(self, data, pause=0.0, fail_at=None, read_size=None):
        self._data = memoryview(data)
        self._pos = 0
        self._pause = pause
        self._fail_at = fail_at
        self._read_size = read_size

    def readable(self):
        return True

    def read(self, size=-1):
        if self._fail_at is not None and self._pos >= self._fail_at:
            raise IOError('client went away')
        if self._pause:
            time.sleep(self._pause)
        if size is None or size < 0:
            size = len(self._data) - self._pos
        if self._read_size:
            size = min(size, self._read_size)
        chunk = bytes(self._data[self._pos:self._pos + size])
        self._pos += len(chunk)
        return chunk


def read_rbd(ceph, pool, name, snapshot=None):
    import rados
    import rbd
    with rados.Rados(conffile=ceph.conf_path) as cluster:
        with cluster.open_ioctx(pool) as ioctx:
            with rbd.Image(ioctx, name, snapshot=snapshot,
                           read_only=True) as image:
                size = image.size()
                out = bytearray()
                while len(out) < size:
                    out += image.read(len(out), min(8 * MiB,
                                                    size - len(out)))
                snaps = {s['name']: image.is_protected_snap(s['name'])
                         for s in image.list_snaps()}
                return bytes(out), snaps


def rbd_exists(ceph, pool, name):
    return name in ceph.images(pool)


def remove_image(ceph, pool, name):
    """Remove an image, its snapshots first, whatever its name (librbd:
    the rbd CLI cannot address names with "/" or "@")."""
    remove_images(ceph, [pool], [name])


def remove_images(ceph, pools, names):
    """Remove each of ``names`` that exists in any of ``pools``: the
    store's own removal (snapshots unprotected and removed first), on one
    cluster connection."""
    import rados
    import rbd

    from glance_progress_store import store as store_mod
    with rados.Rados(conffile=ceph.conf_path) as cluster:
        for pool in pools:
            with cluster.open_ioctx(pool) as ioctx:
                for name in names:
                    try:
                        store_mod._remove_image(ioctx, name)
                    except rbd.ImageNotFound:
                        pass


wait_for = testbed.wait_for  # the one "poll until" of the tests


def publisher_of(store):
    """The publisher a store's uploads write through (one per server list
    and socket timeout, shared in the process)."""
    from glance_progress_store.upload import publisher
    config = store.progress_config
    return publisher.get_publisher(config.servers, config.socket_timeout)


def wait_record(reader, image_id, backend=None, state='stored', timeout=15,
                nbytes=None):
    """Poll until the record reaches `state` (and counts `nbytes`, when
    given); returns it, or fails with the last one read."""
    last = []

    def reached():
        last[:] = [reader.get(image_id, backend)]
        return (last[0] is not None and last[0].state == state and
                nbytes in (None, last[0].bytes) and last[0])
    what = 'the record of %s to be %s' % (image_id, state)
    if nbytes is not None:
        what += ' at %d bytes' % nbytes
    return wait_for(what, reached, timeout, interval=0.05,
                    on_timeout=lambda: '; last record: %r' % last)


class RecordWatcher(threading.Thread):
    """Polls a record while an upload runs, like a dashboard would."""

    def __init__(self, servers, image_id, backend=None, interval=0.01):
        super().__init__(daemon=True)
        self._reader = reader_mod.ProgressReader(servers)
        self._image_id = image_id
        self._backend = backend
        self._interval = interval
        self._stop_event = threading.Event()
        self.seen = []

    def run(self):
        while not self._stop_event.is_set():
            record = self._reader.get(self._image_id, self._backend)
            if record is not None and (not self.seen or
                                       record != self.seen[-1]):
                self.seen.append(record)
            time.sleep(self._interval)

    def wait_for(self, state, timeout=30):
        """Until the last record seen is in `state`; fails otherwise."""
        return wait_for('the watcher to see %s' % state, lambda: (
            self.seen and self.seen[-1].state == state), timeout,
            interval=0.02, on_timeout=lambda: '; seen: %r' % self.seen)

    def stop(self):
        self._stop_event.set()
        self.join()


def raw_sizes(reader, image_id, backend=None):
    """The two size keys as another client reads them (a dashboard, the
    seed's PHP): plain python-memcached, ASCII decimal values."""
    import memcache
    keys = records.keys_for(image_id, backend, reader.prefix)
    client = memcache.Client(list(reader.servers))
    try:
        found = client.get_multi([keys.total, keys.uploading])
    finally:
        client.disconnect_all()
    return tuple(int(found[k]) if k in found else None
                 for k in (keys.total, keys.uploading))


class Valve(io.RawIOBase):
    """An upload body the test meters out: reads hand out data up to
    ``limit`` bytes and then block until the test opens the valve further
    (``open_to``) or fully (``open``). An upload that must be seen in
    flight is held there by the test, not by a pace and luck.

    While held, a read hands out ``TRICKLE`` bytes every ``KEEPALIVE``
    seconds (never the last byte), as a slow client does: glance-api's
    uWSGI fails a body read after 60 s without data (socket-timeout), and
    a test on a busy machine may hold an upload that long. The store
    reports chunks of 1 MiB or more: a trickle never moves a record within
    a test. Held ``max_wait`` seconds in all, a read fails (as a client
    that went away), so that a test that failed before opening the valve
    does not leave its upload hanging.
    """

    KEEPALIVE = 10.0
    TRICKLE = 1024

    def __init__(self, data, limit=0, max_wait=600):
        self._data = memoryview(data)
        self._limit = limit
        self._give_up_at = time.monotonic() + max_wait
        self._cond = threading.Condition()
        self._failed = False
        self.handed_out = 0

    def readable(self):
        return True

    def read(self, size=-1):
        with self._cond:
            while not self._cond.wait_for(
                    lambda: self._failed or self.handed_out < self._limit or
                    self.handed_out >= len(self._data), self.KEEPALIVE):
                if time.monotonic() > self._give_up_at:
                    raise IOError('the test never opened the valve past %d '
                                  'bytes' % self._limit)
                self._limit = min(self._limit + self.TRICKLE,
                                  max(self._limit, len(self._data) - 1))
            if self._failed:
                raise IOError('client went away')
            end = min(len(self._data), self._limit)
            if size is not None and size >= 0:
                end = min(end, self.handed_out + size)
            chunk = bytes(self._data[self.handed_out:end])
            self.handed_out = end
            self._cond.notify_all()
            return chunk

    def open_to(self, nbytes):
        """Let reads go on up to ``nbytes`` bytes in all."""
        with self._cond:
            self._limit = max(self._limit, nbytes)
            self._cond.notify_all()

    def let_through(self, step):
        """``step`` bytes more, but never the last byte: the upload stays
        in flight until ``open()``."""
        self.open_to(min(self._limit + step, len(self._data) - 1))

    def step_until(self, what, seen, step, timeout=120, patience=2.0):
        """helpers.step_until, ``step`` more bytes at a time."""
        def state():
            return '; the upload was let through %d bytes of %d, read %d' % (
                self._limit, len(self._data), self.handed_out)
        return step_until(what, seen, lambda: self.let_through(step),
                          timeout, patience, on_timeout=state)

    def open(self):
        self.open_to(len(self._data))

    def fail(self):
        """The next read raises, as when the client goes away mid-upload."""
        with self._cond:
            self._failed = True
            self._cond.notify_all()


def step_until(what, seen, let_more, timeout=120, patience=2.0,
               on_timeout=None):
    """Call ``let_more()`` (more data to a held upload), and again each
    ``patience`` seconds, until ``seen()`` is truthy; returns its value.

    The store counts a chunk once Ceph acknowledged its write, and it
    collects acknowledgements when it has read another chunk (at the
    latest when progress_rbd_writes_in_flight writes are in flight): what
    a held upload shows may lag what it was sent, and only more data
    moves it. ``patience`` only sets how much data that takes; whatever
    the machine's speed, ``seen()`` decides.
    """
    deadline = time.monotonic() + timeout
    while True:
        let_more()
        more_at = time.monotonic() + patience
        while True:
            value = seen()
            if value:
                return value
            now = time.monotonic()
            if now > deadline:
                raise AssertionError('timed out after %ss waiting for %s%s'
                                     % (timeout, what, on_timeout()
                                        if on_timeout else ''))
            if now > more_at:
                break
            time.sleep(0.02)


def parse_lines(text):
    """The fields of ``glance-progress watch``'s plain lines (# lines
    left out): id, backend, state, bytes, percent, rate, eta, rest."""
    return [line.split(None, 7) for line in text.splitlines()
            if not line.startswith('#')]


class Terminal:
    """A real pseudo-terminal of ``columns`` columns, drained all along
    by a thread (a writer never blocks on a full pty).

    ``fd`` is its slave end, for a subprocess; ``file`` a text file on
    it, for in-process writers; ``text()`` closes both and returns what
    was shown once every writer closed its end.
    """

    def __init__(self, columns):
        import fcntl
        import pty
        import struct
        import termios
        self.master, self.fd = pty.openpty()
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ,
                    struct.pack('HHHH', 40, columns, 0, 0))
        self.file = os.fdopen(os.dup(self.fd), 'w', encoding='utf-8')
        self._chunks = []
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()

    def _drain(self):
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every slave end is closed
                return
            if not chunk:
                return
            self._chunks.append(chunk)

    def _close_slave(self):
        if not self.file.closed:
            self.file.close()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def text(self, timeout=30):
        self._close_slave()
        self._drainer.join(timeout)
        assert not self._drainer.is_alive(), 'a writer kept the pty open'
        return b''.join(self._chunks).decode('utf-8', 'replace')

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._close_slave()
        self._drainer.join(5)
        os.close(self.master)


def digests(data):
    return hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest()


def check_stored(ceph, result, image_id, data, pool=POOL):
    location, size, checksum, multihash, metadata = result
    assert location == 'rbd://%s/%s/%s/snap' % (ceph.fsid, pool, image_id)
    assert size == len(data)
    assert (checksum, multihash) == digests(data)
    stored, snaps = read_rbd(ceph, pool, image_id, 'snap')
    assert stored == data
    assert snaps == {'snap': True}  # snapshot exists and is protected
    return metadata


class Tripwire:
    """Unpickling this would create `path`: readers must never do it.

    A path under the test's tmp_path, so that runs never see each other's.
    """

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, ('touch ' + shlex.quote(str(self.path)),))
