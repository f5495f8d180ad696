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

"""Helpers of the end-to-end tests: images, uploads, checks, polling.

One copy for every e2e module (they were copied between test files).
"""

import hashlib
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

import testbed

from glance_progress_store.read import reader as reader_mod
from tests import helpers

POOL = helpers.POOL
# The fault tests' pool with a byte quota (their Ceph runs a mgr for it).
QUOTA_POOL = 'quota'
QUOTA = 16 * helpers.MiB
# rados_connect_timeout of every fault test stack: librados then gives up
# on any Ceph operation after that many seconds.
RADOS_TIMEOUT = 5
# python-glanceclient reads the body 1 MiB at a time, so SlowReader's
# pause is per MiB: 0.05 s paces an upload at about 20 MiB/s.
PACE = 0.05


def new_image(client, created, **properties):
    """A queued image; its id is returned and added to ``created`` (the
    test's list of images to remove from Ceph afterwards)."""
    image_id = client.images.create(
        name='e2e-%s' % uuid.uuid4().hex[:8], disk_format='raw',
        container_format='bare', **properties)['id']
    created.append(image_id)
    return image_id


def chunked(data):
    """A body of unknown length: glanceclient sends it chunked, with no
    size, as Nova snapshots and Cinder's upload-to-image do."""
    return helpers.SlowReader(data)


def wait_image(client, image_id, until, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        image = client.images.get(image_id)
        if until(image):
            return image
        time.sleep(0.2)
    raise AssertionError('image %s never got there: %s' % (image_id, image))


def wait_for(what, predicate, timeout, interval=0.2):
    """testbed.wait_for as a test failure; returns the seconds waited."""
    started = time.monotonic()
    try:
        testbed.wait_for(what, predicate, timeout, interval)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    return time.monotonic() - started


def check_image(api, ceph, image_id, data, pool=POOL):
    """The image is active, its hashes and direct_url right, and glance
    and Ceph both hold exactly `data`; returns glance's image."""
    client = api.client()
    image = client.images.get(image_id)
    assert image['status'] == 'active'
    assert image['size'] == len(data)
    assert image['checksum'] == hashlib.md5(data).hexdigest()
    assert image['os_hash_algo'] == 'sha512'
    assert image['os_hash_value'] == hashlib.sha512(data).hexdigest()
    assert image['direct_url'] == 'rbd://%s/%s/%s/snap' % (
        ceph.fsid, pool, image_id)
    assert b''.join(client.images.data(image_id)) == data
    stored, snaps = helpers.read_rbd(ceph, pool, image_id, 'snap')
    assert stored == data and snaps == {'snap': True}
    return image


def reader(memcached):
    # A new reader whenever memcached may have been away: python-memcached
    # skips a server for 30 s (its dead_retry) once a request to it failed,
    # so a reader kept across a restart reports "no record" meanwhile.
    return reader_mod.ProgressReader([memcached.address])


def read_record(memcached, image_id):
    return reader(memcached).get(image_id)


def wait_for_record(memcached, image_id, predicate, timeout):
    """Poll until predicate(record) holds; returns the record, or fails."""
    deadline = time.monotonic() + timeout
    source = reader(memcached)
    record = None
    while time.monotonic() < deadline:
        record = source.get(image_id)
        if record is not None and predicate(record):
            return record
        time.sleep(0.05)
    pytest.fail('record of %s never got there in %ss: %s'
                % (image_id, timeout, record))


def log_text(api):
    with open(api.log_path, errors='replace') as f:
        return f.read()


class Upload(threading.Thread):
    """A glanceclient upload that runs while the test injects a fault."""

    def __init__(self, client, image_id, data, pace=PACE, image_size=None):
        super().__init__(daemon=True)
        self._client = client
        self._image_id = image_id
        self._data = data
        self._pace = pace
        self._size = len(data) if image_size is None else image_size
        self.error = None
        self.ended_at = None
        self.elapsed = None

    def run(self):
        started = time.monotonic()
        try:
            self._client.images.upload(
                self._image_id, helpers.SlowReader(self._data, self._pace),
                image_size=self._size)
        except Exception as e:
            self.error = e
        self.ended_at = time.monotonic()
        self.elapsed = self.ended_at - started

    def result(self, timeout):
        """Wait for the end; returns the client's exception or None."""
        self.join(timeout)
        assert not self.is_alive(), 'upload still running after %ss' % timeout
        return self.error


def upload(client, image_id, data, **kwargs):
    """Upload at PACE; returns (client's exception or None, seconds)."""
    job = Upload(client, image_id, data, **kwargs)
    job.start()
    return job.result(timeout=300), job.elapsed


def check_nothing_stored(client, ceph, image_id, pool=POOL):
    """Glance put the image back to queued and Ceph holds nothing of it."""
    assert client.images.get(image_id)['status'] == 'queued'
    assert not helpers.rbd_exists(ceph, pool, image_id)


def check_failed_record(memcached, image_id, reason, size):
    record = helpers.wait_record(reader(memcached), image_id,
                                 state='failed', timeout=30)
    assert record is not None
    assert (record.state, record.reason, record.total) == (
        'failed', reason, size)
    assert record.bytes < size
    return record


def open_raw_upload(api, image_id, content_length):
    """PUT /v2/images/ID/file on a plain socket, headers sent, no body."""
    sock = socket.create_connection(('127.0.0.1', api.port), timeout=120)
    lines = ['PUT /v2/images/%s/file HTTP/1.1' % image_id,
             'Host: 127.0.0.1:%d' % api.port,
             'Content-Type: application/octet-stream',
             'Content-Length: %d' % content_length]
    lines.extend('%s: %s' % item for item in api.headers().items())
    sock.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode('ascii'))
    return sock


def read_raw_response(sock):
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, response.read().decode(errors='replace')


# -- the openstack CLI, as users run it ---------------------------------

OPENSTACK = os.path.join(os.path.dirname(sys.executable), 'openstack')


def openstack(auth, *args, stderr=subprocess.PIPE, timeout=120):
    """Runs ``openstack AUTH... ARGS...``; the CompletedProcess.

    `auth` is an (arguments, environment) pair; no OS_* variable of the
    test's own environment leaks in.
    """
    auth_args, auth_env = auth
    env = {k: v for k, v in os.environ.items() if not k.startswith('OS_')}
    env.update(auth_env)
    return subprocess.run([OPENSTACK] + auth_args + [str(a) for a in args],
                          stdout=subprocess.PIPE, stderr=stderr, env=env,
                          text=True, timeout=timeout)


def failed_cleanly(result, *phrases):
    """Exit 1, the phrases in OSC's one-line error, no traceback."""
    assert result.returncode == 1, result
    assert 'Traceback' not in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    return result.stderr


def openstack_on_a_terminal(auth, *args):
    """``openstack`` with its stderr on a pseudo-terminal (120 columns):
    (CompletedProcess, what the terminal showed)."""
    import fcntl
    import pty
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 40, 120, 0, 0))
    try:
        result = openstack(auth, *args, stderr=slave)
        os.close(slave)
        slave = None
        text = b''
        try:
            while True:
                chunk = os.read(master, 65536)
                if not chunk:
                    break
                text += chunk
        except OSError:  # EIO: the pty's other end is closed
            pass
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    return result, text.decode('utf-8', 'replace')


def parse_lines(text):
    return [line.split(None, 7) for line in text.splitlines()
            if not line.startswith('#')]


class Poller(threading.Thread):
    """What a portal does: calls ``ask()`` (one GET of the progress
    endpoint, a requests Response) until the record says stored."""

    def __init__(self, ask):
        super().__init__(daemon=True)
        self.ask = ask
        self.seen = []  # (status code, JSON body)
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            response = self.ask()
            self.seen.append((response.status_code, response.json()))
            if response.json().get('state') == 'stored':
                return
            time.sleep(0.02)

    def stop(self):
        self.stop_event.set()
        self.join(30)
