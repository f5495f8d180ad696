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
killed; the upload is a raw HTTP PUT whose body is sent slowly, so that
the worker holding its connection can be found through /proc and killed
while it writes into Ceph.
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

import testbed

from glance_progress_store.read import reader as reader_mod
from tests import helpers
from tests.helpers import MiB

pytestmark = pytest.mark.e2e

UPLOAD_SIZE = 512 * MiB  # never sent in full: the worker dies first
PIECE = MiB
STALL_AFTER = 3
INDEX_TTL = 12  # progress_index_ttl: a dead worker's uploads then go


@pytest.fixture(scope='module')
def glance_wk(ceph, memcached, workdir):
    with testbed.GlanceAPI(
            os.path.join(workdir, 'glance-worker-kill'), ceph,
            memcached.address, mode='single', workers=2,
            extra_conf={'glance_store': {
                'progress_index_ttl': INDEX_TTL}}) as api:
        yield api


class SlowUpload(threading.Thread):
    """PUT /v2/images/ID/file with a declared size, sent a piece at a
    time, until the server goes away or ``stop()``."""

    def __init__(self, api, image_id, pause):
        super().__init__(daemon=True)
        self.api = api
        self.image_id = image_id
        self.pause = pause
        self.connected = threading.Event()
        self.stopped = threading.Event()
        self.sent = 0
        self.error = None
        self.client_port = None

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
                conn.send(piece)
                self.sent += len(piece)
                time.sleep(self.pause)
            if not self.stopped.is_set():
                conn.getresponse().read()
        except OSError as e:  # the worker died: reset or broken pipe
            self.error = e
        finally:
            self.connected.set()
            conn.close()

    def stop(self):
        self.stopped.set()
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
    deadline = time.monotonic() + timeout
    while name in ceph.images(pool):
        helpers.remove_image(ceph, pool, name)
        if time.monotonic() > deadline:
            raise AssertionError('could not remove %s/%s' % (pool, name))
        time.sleep(2)


def test_killed_worker_leaves_a_stalled_upload_and_an_orphan(
        glance_wk, ceph, memcached):
    client = glance_wk.client()
    image = client.images.create(name='e2e-kill-%s' % uuid.uuid4().hex[:8],
                                 disk_format='raw', container_format='bare')
    image_id = image['id']
    reader = reader_mod.ProgressReader([memcached.address])
    upload = SlowUpload(glance_wk, image_id, pause=0.05)
    upload.start()
    try:
        assert upload.connected.wait(30)
        # wait until two 8 MiB chunks are in Ceph, then kill at once
        deadline = time.monotonic() + 60
        record = None
        while time.monotonic() < deadline:
            record = reader.get(image_id)
            if record is not None and record.bytes >= 16 * MiB:
                break
            time.sleep(0.05)
        assert record is not None and record.bytes >= 16 * MiB, record
        worker = worker_of(glance_wk, upload.client_port)
        os.kill(worker, signal.SIGKILL)
        killed_at = time.time()
        upload.join(60)
        assert upload.error is not None  # the server end went away
        assert upload.sent < UPLOAD_SIZE

        # nothing updates the record any more: it stays "uploading"
        last = reader.get(image_id)
        assert last.state == 'uploading' and last.total == UPLOAD_SIZE
        assert killed_at - last.updated_at < 2

        # show: uploading at first, stalled once STALL_AFTER has passed
        states = []
        while time.time() - killed_at < STALL_AFTER + 10:
            code, [view] = glance_progress(
                'show', '--json', '--stall-after', STALL_AFTER,
                '--servers', memcached.address, image_id)
            states.append((round(time.time() - last.updated_at, 1),
                           view['state'], code))
            if view['state'] == 'stalled':
                break
            assert (view['state'], code) == ('uploading', 0), states
            time.sleep(0.5)
        print('show after the kill (age, state, exit):', states)
        age, state, code = states[-1]
        assert (state, code) == ('stalled', 2), states
        assert STALL_AFTER <= age < STALL_AFTER + 3, states
        assert view['bytes'] == last.bytes and view['age_s'] > STALL_AFTER
        assert reader.get(image_id) == last  # still "uploading" in memcached

        # list finds it without its id: stalled, then gone with the dead
        # worker's index (re-written every INDEX_TTL / 3 while it lived)
        code, listed = glance_progress(
            'list', '--json', '--stall-after', STALL_AFTER,
            '--servers', memcached.address)
        assert [(v['state'], v['bytes']) for v in listed
                if v['image_id'] == image_id] == [('stalled', last.bytes)]
        assert code == 2
        while True:
            code, listed = glance_progress(
                'list', '--json', '--stall-after', STALL_AFTER,
                '--servers', memcached.address)
            if image_id not in [v['image_id'] for v in listed]:
                break
            assert time.time() - killed_at < INDEX_TTL + 5, listed
            time.sleep(0.5)
        gone_after = time.time() - killed_at
        print('list: gone %.1f s after the kill' % gone_after)
        assert gone_after > INDEX_TTL - INDEX_TTL / 3.0 - 1

        # the partial image is an orphan, found through glance's own config
        assert image_id in ceph.images(helpers.POOL)
        code, found = glance_progress(
            'orphans', '--json', '--stall-after', STALL_AFTER,
            '--config-file', glance_wk.conf_path)
        mine = [f for f in found if f['image'] == image_id]
        assert code == 1
        assert mine == [{
            'pool': helpers.POOL, 'image': image_id, 'state': 'stalled',
            'bytes': last.bytes, 'total': UPLOAD_SIZE,
            'age_s': mine[0]['age_s'], 'record_state': 'uploading',
            'reason': None, 'error': None}]
        assert mine[0]['age_s'] > STALL_AFTER

        # glance never got a location: the image is not active
        assert client.images.get(image_id)['status'] in ('saving',
                                                         'queued')
        # uWSGI replaced the worker; the stack still serves
        deadline = time.monotonic() + 60
        while worker in glance_wk.worker_pids() or len(
                glance_wk.worker_pids()) < 2:
            assert time.monotonic() < deadline, glance_wk.worker_pids()
            time.sleep(0.2)
    finally:
        upload.stop()
        try:
            client.images.delete(image_id)
        except Exception:
            pass  # the test's own outcome matters more than this one
        remove_when_unwatched(ceph, helpers.POOL, image_id)
    assert image_id not in ceph.images(helpers.POOL)
