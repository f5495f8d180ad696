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

"""Soak: many concurrent uploads through a real glance-api, for minutes.

Not part of the default run (``tox -e soak``, ``pytest -m soak``). It
boots its own Ceph, memcached and glance-api (single store, four uWSGI
workers) on loopback and has eight client threads upload images of random
sizes (1 to 64 MiB) with python-glanceclient, half with a declared size
and half chunked (no size, as Nova snapshots), while memcached is
restarted once in the middle. Each image is checked as glance reports it
(active, size, checksum, os_hash_value against hashlib on the data sent);
at the end, every image kept must still be so, the pool must hold exactly
the RBD images of the active images, and no progress record may be left
``uploading`` or ``finalizing``.

Bounded by time, count and memory: the OSD keeps its data in RAM
(memstore), so once the images kept exceed ``GPS_SOAK_KEEP_MIB``, the
oldest ones are deleted through glance, which must remove their RBD
images too.

Environment:
    GPS_SOAK_SECONDS      how long new uploads start (default 180)
    GPS_SOAK_MAX_UPLOADS  at most this many uploads (default 1000)
    GPS_SOAK_KEEP_MIB     images kept before the oldest go (default 2048)
    GPS_SOAK_SEED         random seed (default: random, printed)
    GPS_SOAK_LOG          copy glance-api's log there at the end
"""

import collections
import dataclasses
import hashlib
import os
import random
import shlex
import shutil
import sys
import threading
import time

import pytest

import testbed

from glance_progress_store.read import reader as reader_mod
from glance_progress_store import records
from tests import helpers
from tests.helpers import MiB

pytestmark = pytest.mark.soak

SECONDS = float(os.environ.get('GPS_SOAK_SECONDS', '180'))
MAX_UPLOADS = int(os.environ.get('GPS_SOAK_MAX_UPLOADS', '1000'))
KEEP_BYTES = int(os.environ.get('GPS_SOAK_KEEP_MIB', '2048')) * MiB
SEED = int(os.environ.get('GPS_SOAK_SEED', random.randrange(2 ** 32)))
THREADS = 8
WORKERS = 4
MIN_SIZE, MAX_SIZE = MiB, 64 * MiB
POOL = 'images'
# glance's database is the stack's sqlite file. oslo.db opens every
# transaction with a plain BEGIN, so when four workers save images at once
# one that read first and then writes fails at once with "database is
# locked" (sqlite returns SQLITE_BUSY without waiting, as waiting could
# deadlock), and glance answers HTTP 500, even after the store succeeded.
# MySQL, which production glance uses, makes writers wait for each other;
# so does this shim, in the glance processes only: it turns oslo.db's
# BEGIN into BEGIN IMMEDIATE, which waits (up to ?timeout=) for the lock.
SQLITE = 'sqlite:///%s/glance.sqlite?timeout=120'
SQLITE_SHIM = """\
import sqlite3
import sqlite3.dbapi2

_connect = sqlite3.dbapi2.connect


def _immediate(sql):
    if isinstance(sql, str) and sql.strip().upper() == 'BEGIN':
        return 'BEGIN IMMEDIATE'
    return sql


class _Cursor(sqlite3.Cursor):
    def execute(self, sql, *args):
        return super().execute(_immediate(sql), *args)


class _Connection(sqlite3.Connection):
    def cursor(self, factory=_Cursor):
        return super().cursor(factory)

    def execute(self, sql, *args):
        return super().execute(_immediate(sql), *args)


def connect(*args, **kwargs):
    kwargs.setdefault('factory', _Connection)
    return _connect(*args, **kwargs)


sqlite3.connect = sqlite3.dbapi2.connect = connect
"""


def glance_python(workdir):
    """This interpreter, with the sqlite shim as its sitecustomize."""
    shim_dir = os.path.join(workdir, 'sqlite-shim')
    os.makedirs(shim_dir, exist_ok=True)
    with open(os.path.join(shim_dir, 'sitecustomize.py'), 'w') as f:
        f.write(SQLITE_SHIM)
    wrapper = os.path.join(shim_dir, 'python')
    with open(wrapper, 'w') as f:
        f.write('#!/bin/sh\nPYTHONPATH=%s${PYTHONPATH:+:$PYTHONPATH} '
                'exec %s "$@"\n' % (shlex.quote(shim_dir),
                                    shlex.quote(sys.executable)))
    os.chmod(wrapper, 0o755)
    return wrapper


@pytest.fixture(scope='module')
def stack(workdir):
    """Ceph, memcached and glance-api of the soak's own."""
    root = os.path.join(workdir, 'soak')
    with testbed.LocalStack(
            root, pools=(POOL,),
            memstore_bytes=KEEP_BYTES + (THREADS + 4) * MAX_SIZE + 1024 * MiB,
            glance=dict(
                mode='single', backends={'ceph': POOL}, workers=WORKERS,
                extra_conf={'database': {'connection': SQLITE % root}},
                python=glance_python(workdir))) as local:
        yield local.ceph, local.memcached, local.api


@dataclasses.dataclass
class Upload:
    image_id: str
    size: int
    known: bool
    md5: str
    sha512: str
    started: float  # time.time()
    ended: float = 0.0
    error: object = None


class Soak:
    """The shared state of the client threads."""

    def __init__(self, api):
        self.api = api
        self.lock = threading.Lock()
        self.deadline = time.monotonic() + SECONDS
        self.uploads = []
        self.kept = collections.deque()  # verified, active, oldest first
        self.kept_bytes = 0
        self.deleted = []
        self.problems = []

    def _next(self):
        with self.lock:
            if (time.monotonic() >= self.deadline or
                    len(self.uploads) >= MAX_UPLOADS):
                return False
            return True

    def client_thread(self, number):
        rng = random.Random(SEED * 100 + number)
        client = self.api.client()
        while self._next():
            size = rng.randint(MIN_SIZE, MAX_SIZE)
            known = rng.random() < 0.5
            data = helpers.payload(size, seed=rng.randrange(2 ** 32))
            upload = Upload(None, size, known, hashlib.md5(data).hexdigest(),
                            hashlib.sha512(data).hexdigest(), time.time())
            try:
                image = client.images.create(
                    name='soak-%d' % number, disk_format='raw',
                    container_format='bare')
                upload.image_id = image['id']
                with self.lock:
                    self.uploads.append(upload)
                if known:
                    client.images.upload(image['id'],
                                         helpers.SlowReader(data),
                                         image_size=size)
                else:
                    client.images.upload(image['id'],
                                         helpers.SlowReader(data))
                upload.ended = time.time()
                del data
                problem = check_image(client.images.get(image['id']), upload)
                if problem:
                    raise AssertionError(problem)
            except Exception as e:
                upload.error = '%s (%s size %d): %s' % (
                    type(e).__name__, 'known' if known else 'unknown', size,
                    e)
                with self.lock:
                    if upload.image_id is None:
                        self.uploads.append(upload)
                continue
            self._keep(client, upload)

    def _keep(self, client, upload):
        with self.lock:
            self.kept.append(upload)
            self.kept_bytes += upload.size
            old = []
            while self.kept_bytes > KEEP_BYTES:
                oldest = self.kept.popleft()
                self.kept_bytes -= oldest.size
                old.append(oldest)
        for upload in old:
            try:
                client.images.delete(upload.image_id)
            except Exception as e:
                self.problems.append('delete %s: %s' % (upload.image_id, e))
            with self.lock:
                self.deleted.append(upload)


def check_image(image, upload):
    """What is wrong with an image as glance shows it, or None."""
    expected = {'status': 'active', 'size': upload.size,
                'checksum': upload.md5, 'os_hash_algo': 'sha512',
                'os_hash_value': upload.sha512}
    actual = {key: image.get(key) for key in expected}
    if actual != expected:
        return '%s: %s, expected %s' % (upload.image_id, actual, expected)
    return None


def wait_records_settled(reader, uploads, timeout=30):
    """{image id: record or None} once none is uploading/finalizing."""
    deadline = time.monotonic() + timeout
    while True:
        found = {u.image_id: reader.get(u.image_id) for u in uploads}
        active = [i for i, r in found.items() if r is not None and
                  r.state in (records.UPLOADING, records.FINALIZING)]
        if not active or time.monotonic() > deadline:
            return found, active
        time.sleep(0.5)


def test_soak(stack, capsys):
    from glanceclient import exc as glance_exc  # e2e-requirements.txt
    ceph, memcached, api = stack
    soak = Soak(api)
    threads = [threading.Thread(target=soak.client_thread, args=(n,),
                                name='soak-%d' % n, daemon=True)
               for n in range(THREADS)]
    began = time.time()
    for thread in threads:
        thread.start()

    # memcached restarted once, in the middle: empty, same port
    time.sleep(SECONDS / 2)
    restart_begin = time.time()
    in_flight = sum(1 for u in list(soak.uploads)
                    if u.image_id and not u.ended and not u.error)
    memcached.restart()
    restart_end = time.time()

    for thread in threads:
        thread.join(SECONDS + 600)
        assert not thread.is_alive(), 'a client thread hangs'
    elapsed = time.time() - began

    uploads = soak.uploads
    failures = [u for u in uploads if u.error]
    done = [u for u in uploads if not u.error]
    total_bytes = sum(u.size for u in done)
    summary = (
        'soak: %d uploads (%d known size, %d chunked), %.1f MiB in %.1f s '
        '= %.1f MiB/s aggregate, %d failures, %d deleted, %d kept, '
        'memcached restarted at %.0f s with %d uploads in flight, seed %d'
        % (len(uploads), sum(u.known for u in done),
           sum(not u.known for u in done), total_bytes / MiB, elapsed,
           total_bytes / MiB / elapsed, len(failures), len(soak.deleted),
           len(soak.kept), restart_begin - began, in_flight, SEED))
    with capsys.disabled():
        print('\n' + summary)
        if failures or soak.problems:
            print('glance-api log (%s), last lines:\n%s' % (
                api.log_path, api.log_tail(120)))
    keep_log = os.environ.get('GPS_SOAK_LOG')
    if keep_log:
        shutil.copyfile(api.log_path, keep_log)
    assert not failures, [(u.image_id, u.error) for u in failures]
    assert not soak.problems, soak.problems
    assert done and any(u.known for u in done) and any(
        not u.known for u in done)
    assert in_flight > 0, 'memcached restarted while nothing uploaded'

    # every image kept is still active and right; the deleted are gone
    client = api.client()
    wrong = [check_image(client.images.get(u.image_id), u)
             for u in soak.kept]
    assert not any(wrong), [w for w in wrong if w]
    for upload in soak.deleted:
        try:
            status = client.images.get(upload.image_id)['status']
        except glance_exc.HTTPNotFound:
            status = 'not found'
        assert status in ('deleted', 'not found'), upload.image_id
    active = {image['id'] for image in client.images.list()
              if image['status'] == 'active'}
    assert active == {u.image_id for u in soak.kept}
    # exactly the RBD images of the active images: no partial image left
    assert set(ceph.images(POOL)) == active
    for upload in list(soak.kept)[-3:]:
        stored, snaps = helpers.read_rbd(ceph, POOL, upload.image_id, 'snap')
        assert hashlib.sha512(stored).hexdigest() == upload.sha512
        assert snaps == {'snap': True}

    # no record left uploading or finalizing; those of uploads that began
    # after the restart cannot have been lost with it
    reader = reader_mod.ProgressReader([memcached.address])
    found, active_records = wait_records_settled(reader, done)
    assert not active_records, [(i, found[i]) for i in active_records]
    after = [u for u in done if u.started > restart_end]
    assert after, 'no upload started after the restart'
    for upload in after:
        record = found[upload.image_id]
        assert record is not None, upload.image_id
        assert (record.state, record.bytes, record.total) == (
            'stored', upload.size, upload.size), upload.image_id
