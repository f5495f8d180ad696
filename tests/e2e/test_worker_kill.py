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

"""A glance-api worker killed in the middle of an upload (SIGKILL, OOM).

Nothing runs the store's cleanup then: the progress record stays
``uploading`` forever (until its TTL) and a partial RBD image stays in the
pool. The operator's tools must tell: ``glance-progress show`` calls the
upload ``stalled`` once it has not moved for ``--stall-after`` seconds, and
``glance-progress orphans`` lists the partial image as ``stalled`` with the
commands to remove it.

The stack is this module's own (two uWSGI workers), since a worker is
killed; the upload is a raw HTTP PUT whose body the test sends a piece
at a time, so that the worker holding its connection can be found
through /proc and killed while it writes into Ceph. The kill happens
once, in the module's ``killed`` fixture; each test checks one phase of
what follows.
"""

import collections
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

from glanceclient import exc as glance_exc
import pytest

import testbed

from glance_progress_store.read import reader as reader_mod
from tests import helpers
from tests.helpers import MiB

pytestmark = pytest.mark.e2e

UPLOAD_SIZE = 512 * MiB  # never sent in full: the worker dies first
PIECE = MiB
CHUNK = 8 * MiB  # glance's rbd_store_chunk_size in the test bed
STALL_AFTER = 3
# progress_index_ttl: a dead worker's uploads go from lists between
# 2/3 of it and all of it after the kill; until then the tests see them
# (stalled after STALL_AFTER) whatever the machine's load.
INDEX_TTL = 24


@pytest.fixture(scope='module')
def glance_wk(ceph, memcached, workdir):
    with testbed.GlanceAPI(
            os.path.join(workdir, 'glance-worker-kill'), ceph,
            memcached.address, mode='single', workers=2,
            extra_conf={'glance_store': {
                'progress_index_ttl': INDEX_TTL}}) as api:
        yield api


class HeldUpload(threading.Thread):
    """PUT /v2/images/ID/file with a declared size, sent a piece at a
    time as far as ``open_to()`` allows, until the server goes away or
    ``stop()``."""

    def __init__(self, api, image_id):
        super().__init__(daemon=True)
        self.api = api
        self.image_id = image_id
        self.connected = threading.Event()
        self.stopped = threading.Event()
        self.sent = 0
        self.error = None
        self.client_port = None
        self._allowed = 0
        self._cond = threading.Condition()

    def open_to(self, nbytes):
        with self._cond:
            self._allowed = max(self._allowed, nbytes)
            self._cond.notify_all()

    def run(self):
        conn = http.client.HTTPConnection('127.0.0.1', self.api.port,
                                          timeout=120)
        try:
            conn.putrequest('PUT', '/v2/images/%s/file' % self.image_id)
            headers = dict(self.api.headers())
            headers.update({'Content-Type': 'application/octet-stream',
                            'Content-Length': str(UPLOAD_SIZE)})
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            self.client_port = conn.sock.getsockname()[1]
            self.connected.set()
            piece = helpers.payload(PIECE, seed=11)
            while self.sent < UPLOAD_SIZE and not self.stopped.is_set():
                with self._cond:
                    self._cond.wait_for(lambda: self.stopped.is_set() or
                                        self.sent < self._allowed, 120)
                if self.stopped.is_set() or self.sent >= self._allowed:
                    break
                conn.send(piece)
                self.sent += len(piece)
            if not self.stopped.is_set() and self.sent >= UPLOAD_SIZE:
                conn.getresponse().read()
        except OSError as e:  # the worker died: reset or broken pipe
            self.error = e
        finally:
            self.connected.set()
            conn.close()

    def stop(self):
        self.stopped.set()
        with self._cond:
            self._cond.notify_all()
        self.join(30)


def _server_socket_inode(api_port, client_port):
    """The inode of glance-api's end of the client's TCP connection."""
    with open('/proc/net/tcp') as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if (int(local.split(':')[1], 16) == api_port and
                    int(remote.split(':')[1], 16) == client_port):
                return inode
    return None


def worker_of(api, client_port):
    """The uWSGI worker that holds the connection from ``client_port``."""
    inode = _server_socket_inode(api.port, client_port)
    assert inode is not None, 'no server end for port %d' % client_port
    target = 'socket:[%s]' % inode
    for pid in api.worker_pids():
        fd_dir = '/proc/%d/fd' % pid
        for fd in os.listdir(fd_dir):
            try:
                if os.readlink(os.path.join(fd_dir, fd)) == target:
                    return pid
            except OSError:
                continue
    raise AssertionError('no worker of %s holds %s' % (api.worker_pids(),
                                                       target))


def glance_progress(*args):
    command = [os.path.join(os.path.dirname(sys.executable),
                            'glance-progress'), *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True,
                          timeout=120)
    return done.returncode, [json.loads(line)
                             for line in done.stdout.splitlines()]


def remove_when_unwatched(ceph, pool, name, timeout=120):
    """``rbd rm`` fails while the dead worker's watch on the image lasts
    (osd_client_watch_timeout, 30 s by default): retry until it is gone."""
    def removed():
        helpers.remove_image(ceph, pool, name)
        return name not in ceph.images(pool)
    helpers.wait_for('%s/%s removed' % (pool, name), removed, timeout,
                     interval=2)


Killed = collections.namedtuple(
    'Killed', 'image_id worker killed_at last upload client')


@pytest.fixture(scope='module')
def killed(glance_wk, ceph, memcached):
    """An upload whose worker was SIGKILLed with two chunks in Ceph."""
    client = glance_wk.client()
    image_id = client.images.create(
        name='e2e-kill-%s' % uuid.uuid4().hex[:8], disk_format='raw',
        container_format='bare')['id']
    reader = reader_mod.ProgressReader([memcached.address])
    upload = HeldUpload(glance_wk, image_id)
    upload.start()
    try:
        assert upload.connected.wait(30)
        # two 8 MiB chunks in Ceph, then kill at once: the test lets data
        # through a chunk at a time until the record says so
        record = None
        for allowed in range(CHUNK, UPLOAD_SIZE, CHUNK):
            upload.open_to(allowed + PIECE)
            if wait_record_bytes(reader, image_id, 2 * CHUNK):
                break
        record = reader.get(image_id)
        assert record is not None and record.bytes >= 2 * CHUNK, record
        worker = worker_of(glance_wk, upload.client_port)
        os.kill(worker, signal.SIGKILL)
        killed_at = time.time()
        upload.open_to(UPLOAD_SIZE)  # until the dead end refuses it
        upload.join(60)
        assert not upload.is_alive()
        yield Killed(image_id, worker, killed_at, reader.get(image_id),
                     upload, client)
    finally:
        upload.stop()
        try:
            client.images.delete(image_id)
        except glance_exc.HTTPException:
            pass  # the tests' own outcome matters more than this one
        remove_when_unwatched(ceph, helpers.POOL, image_id)
        assert image_id not in ceph.images(helpers.POOL)


def wait_record_bytes(reader, image_id, nbytes, patience=2.0):
    """True once the record shows ``nbytes``; False after ``patience``
    seconds without (the store reports a chunk when it reads the next)."""
    try:
        helpers.wait_for('%d bytes' % nbytes, lambda: (
            lambda r: r is not None and r.bytes >= nbytes)(
                reader.get(image_id)), patience, interval=0.05)
        return True
    except RuntimeError:
        return False


def test_the_upload_dies_with_its_worker(killed):
    assert killed.upload.error is not None  # the server end went away
    assert killed.upload.sent < UPLOAD_SIZE
    # nothing updates the record any more: it stays "uploading"
    last = killed.last
    assert last.state == 'uploading' and last.total == UPLOAD_SIZE
    assert 2 * CHUNK <= last.bytes < killed.upload.sent
    assert last.updated_at <= killed.killed_at


def test_show_calls_it_stalled_after_stall_after(killed, memcached):
    """``show`` says uploading while the record is younger than
    --stall-after, stalled from then on (its age is the record's)."""
    def show(stall_after):
        code, [view] = glance_progress(
            'show', '--json', '--stall-after', stall_after,
            '--servers', memcached.address, killed.image_id)
        return view, code
    view, code = show(3600)
    assert (view['state'], code) == ('uploading', 0), view
    views = []

    def stalled():
        view, code = show(STALL_AFTER)
        views.append((view['age_s'], view['state'], code))
        # stalled once older than STALL_AFTER (age_s is rounded)
        assert view['state'] in ('uploading', 'stalled'), views
        assert (view['age_s'] >= STALL_AFTER if view['state'] == 'stalled'
                else view['age_s'] <= STALL_AFTER), views
        return view['state'] == 'stalled' and (view, code)
    view, code = helpers.wait_for('show to call it stalled', stalled,
                                  STALL_AFTER + 60, interval=0.5)
    print('show after the kill (age, state, exit):', views)
    assert code == 2
    assert view['bytes'] == killed.last.bytes
    assert view['age_s'] >= STALL_AFTER
    # still "uploading" in memcached
    assert reader_mod.ProgressReader([memcached.address]).get(
        killed.image_id) == killed.last


def test_list_shows_it_stalled_then_drops_it_with_the_index(
        killed, memcached):
    """``list`` finds it without its id: stalled, then gone with the dead
    worker's index (re-written every INDEX_TTL / 3 while it lived)."""
    def listed():
        code, views = glance_progress(
            'list', '--json', '--stall-after', STALL_AFTER,
            '--servers', memcached.address)
        return code, [(v['state'], v['bytes']) for v in views
                      if v['image_id'] == killed.image_id]
    code, mine = helpers.wait_for('list to call it stalled', lambda: (
        lambda code, mine: mine != [('uploading', killed.last.bytes)] and (
            code, mine))(*listed()), STALL_AFTER + 60, interval=0.5)
    assert (code, mine) == (2, [('stalled', killed.last.bytes)])
    helpers.wait_for('list to drop it', lambda: listed()[1] == [],
                     INDEX_TTL + 60, interval=0.5)
    gone_after = time.time() - killed.killed_at
    print('list: gone %.1f s after the kill' % gone_after)
    assert gone_after > INDEX_TTL - INDEX_TTL / 3.0 - 1
    # the index expired, not the record: it still says uploading
    assert reader_mod.ProgressReader([memcached.address]).get(
        killed.image_id) == killed.last


def test_orphans_lists_the_partial_image(killed, glance_wk, ceph):
    """The partial image is an orphan, found through glance's config."""
    assert killed.image_id in ceph.images(helpers.POOL)

    def found():
        code, found = glance_progress(
            'orphans', '--json', '--stall-after', STALL_AFTER,
            '--config-file', glance_wk.conf_path)
        mine = [f for f in found if f['image'] == killed.image_id]
        return mine and mine[0]['state'] == 'stalled' and (code, mine)
    code, mine = helpers.wait_for('orphans to call it stalled', found,
                                  STALL_AFTER + 60, interval=0.5)
    assert code == 1
    assert mine == [{
        'pool': helpers.POOL, 'image': killed.image_id, 'state': 'stalled',
        'bytes': killed.last.bytes, 'total': UPLOAD_SIZE,
        'age_s': mine[0]['age_s'], 'record_state': 'uploading',
        'reason': None, 'error': None}]
    assert mine[0]['age_s'] > STALL_AFTER


def test_glance_keeps_it_inactive_and_uwsgi_replaces_the_worker(
        killed, glance_wk):
    # glance never got a location: the image is not active
    assert killed.client.images.get(killed.image_id)['status'] in (
        'saving', 'queued')
    helpers.wait_for('uWSGI to replace worker %d' % killed.worker, lambda: (
        killed.worker not in glance_wk.worker_pids() and
        len(glance_wk.worker_pids()) == 2), 60)
    # the stack still serves
    assert glance_wk.client().images.get(killed.image_id)['id'] == (
        killed.image_id)
