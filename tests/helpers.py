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
    import rados
    import rbd
    with rados.Rados(conffile=ceph.conf_path) as cluster:
        with cluster.open_ioctx(pool) as ioctx:
            try:
                with rbd.Image(ioctx, name) as image:
                    for snap in image.list_snaps():
                        if image.is_protected_snap(snap['name']):
                            image.unprotect_snap(snap['name'])
                        image.remove_snap(snap['name'])
                rbd.RBD().remove(ioctx, name)
            except rbd.ImageNotFound:
                pass


def wait_record(reader, image_id, backend=None, state='stored', timeout=15):
    """Poll until the record reaches `state`; returns it (or the last)."""
    deadline = time.monotonic() + timeout
    record = None
    while time.monotonic() < deadline:
        record = reader.get(image_id, backend)
        if record is not None and record.state == state:
            return record
        time.sleep(0.05)
    return record


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

    def wait_for(self, state, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.seen and self.seen[-1].state == state:
                return True
            time.sleep(0.02)
        return False

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
