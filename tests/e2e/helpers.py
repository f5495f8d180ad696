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

from glance_progress_store import options
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
# [upload_progress] memcached_dead_retry of the test bed's glance-apis
# (the default): how long a worker knows a memcached that failed is down.
DEAD_RETRY = next(opt.default for opt in options.FILTER_OPTS
                  if opt.name == 'memcached_dead_retry')
# testbed.GlanceAPI's rbd_store_chunk_size: the store writes 8 MiB chunks.
CHUNK = 8 * helpers.MiB


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
    last = []

    def reached():
        last[:] = [client.images.get(image_id)]
        return until(last[0]) and last[0]
    return helpers.wait_for('image %s to get there' % image_id, reached,
                            timeout, on_timeout=lambda: ': %s' % last)


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
    # A new reader whenever memcached may have been away or restarted.
    return reader_mod.ProgressReader([memcached.address])


def read_record(memcached, image_id):
    return reader(memcached).get(image_id)


def wait_for_record(memcached, image_id, predicate, timeout):
    """Poll until predicate(record) holds; returns the record, or fails."""
    source = reader(memcached)
    last = []

    def reached():
        last[:] = [source.get(image_id)]
        return last[0] is not None and predicate(last[0]) and last[0]
    return helpers.wait_for('the record of %s to get there' % image_id,
                            reached, timeout, interval=0.05,
                            on_timeout=lambda: ': %s' % last)


def check_503_while_frozen(memcached, get_progress):
    """A frozen memcached makes the endpoint answer 503, with its header
    and Retry-After, within [upload_progress] memcached_socket_timeout
    (1 s) and glance's own time; 200 again once memcached resumes and the
    worker that saw it down asks it again (after DEAD_RETRY)."""
    memcached.pause()
    try:
        started = time.monotonic()
        response = get_progress()
        elapsed = time.monotonic() - started
    finally:
        memcached.resume()
    resumed = time.monotonic()
    # helpers.py is not a test module: pytest does not rewrite its asserts
    assert response.status_code == 503, (
        response.status_code, dict(response.headers), response.text[:500],
        elapsed)
    assert response.headers['OpenStack-Upload-Progress'] == '1'
    assert 1 <= int(response.headers['Retry-After']) <= DEAD_RETRY
    error = response.json()['error']
    assert error['code'] == 503 and 'did not answer' in error['message']
    assert elapsed < 1.0 + 1.5  # memcached_socket_timeout, and glance
    helpers.wait_for('progress to be served again', lambda: (
        time.monotonic() > resumed + DEAD_RETRY and
        get_progress().status_code == 200), DEAD_RETRY + 30)


def browser(user_data_dir, window_size='1280,800'):
    """Debian's Chromium through Selenium and Debian's chromedriver, on
    loopback only: the resolver rules refuse Chromium's own background
    requests, which leave the machine otherwise."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = '/usr/bin/chromium'
    for arg in ('--headless', '--no-sandbox', '--disable-gpu',
                '--disable-background-networking',
                '--disable-component-update', '--disable-sync',
                '--no-first-run', '--disable-default-apps',
                '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
                '--user-data-dir=%s' % user_data_dir,
                '--window-size=%s' % window_size):
        options.add_argument(arg)
    options.set_capability('goog:loggingPrefs',
                           {'browser': 'ALL', 'performance': 'ALL'})
    return webdriver.Chrome(service=Service('/usr/bin/chromedriver'),
                            options=options)


def log_text(api):
    with open(api.log_path, errors='replace') as f:
        return f.read()


class Upload(threading.Thread):
    """A glanceclient upload that runs while the test injects a fault."""

    def __init__(self, client, image_id, data, pace=PACE, image_size=None,
                 body=None):
        """``body``, a helpers.Valve of ``data`` say, is sent instead of
        ``data`` at ``pace``."""
        super().__init__(daemon=True)
        self._client = client
        self._image_id = image_id
        self._data = data
        self._body = body
        self._pace = pace
        self._size = len(data) if image_size is None else image_size
        self.error = None
        self.ended_at = None
        self.elapsed = None

    def run(self):
        started = time.monotonic()
        try:
            self._client.images.upload(
                self._image_id, self._body or helpers.SlowReader(
                    self._data, self._pace), image_size=self._size)
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


def _openstack_command(auth, args):
    auth_args, auth_env = auth
    env = {k: v for k, v in os.environ.items() if not k.startswith('OS_')}
    env.update(auth_env)
    return [OPENSTACK] + auth_args + [str(a) for a in args], env


def openstack(auth, *args, stderr=subprocess.PIPE, timeout=120):
    """Runs ``openstack AUTH... ARGS...``; the CompletedProcess.

    `auth` is an (arguments, environment) pair; no OS_* variable of the
    test's own environment leaks in.
    """
    command, env = _openstack_command(auth, args)
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr,
                          env=env, text=True, timeout=timeout)


class Follower:
    """``openstack AUTH... ARGS...`` running (a ``--wait``), its stderr
    lines collected as they come, so that the test can wait for one."""

    def __init__(self, auth, *args):
        command, env = _openstack_command(auth, args)
        self.proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, text=True)
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def shown(self, predicate):
        """The fields of the first line shown that ``predicate(fields)``
        accepts (helpers.parse_lines), or None."""
        return next((f for f in helpers.parse_lines(''.join(self.lines))
                     if predicate(f)), None)

    def result(self, timeout=120):
        """Wait for the end: the CompletedProcess."""
        try:
            self.proc.wait(timeout)
        finally:
            self.proc.kill()
        out = self.proc.stdout.read()
        self._reader.join(30)
        return subprocess.CompletedProcess(self.proc.args,
                                           self.proc.returncode, out,
                                           ''.join(self.lines))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def follow_until_stored(auth, body, distinct, *args):
    """``show --wait`` (ARGS...) of an upload held by ``body`` (a Valve):
    the upload moves only once the command showed its bytes so far, until
    it showed ``distinct`` byte counts uploading; the CompletedProcess."""
    image_id = args[0]
    follower = Follower(auth, 'image', 'progress', 'show', *args)
    try:
        helpers.wait_for('show --wait to show the upload uploading', lambda: (
            follower.shown(lambda f: f[2] == 'uploading')), 120,
            interval=0.05, on_timeout=lambda: ': %s' % follower.lines)
        seen = set()
        while len(seen) < distinct:
            line = follower.shown(lambda f: f[2] == 'uploading' and (
                f[3] not in seen))
            if line is None:
                line = body.step_until(
                    'show --wait to show %s with new bytes' % image_id,
                    lambda: follower.shown(lambda f: f[2] == 'uploading'
                                           and f[3] not in seen),
                    CHUNK, patience=3)
            seen.add(line[3])
        body.open()
        return follower.result(120)
    finally:
        body.open()
        follower.kill()


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
    with helpers.Terminal(120) as terminal:
        result = openstack(auth, *args, stderr=terminal.fd)
        return result, terminal.text()


def upload_while_polled(client, image_id, data, ask, distinct=3):
    """Upload ``data`` while a Poller calls ``ask()``; the upload is held
    by the test until the poller saw ``distinct`` byte counts uploading.
    Returns what the poller saw, (status code, JSON body) up to stored."""
    poller = Poller(ask)
    poller.start()
    body = helpers.Valve(data, limit=1)
    job = Upload(client, image_id, data, body=body)
    job.start()

    def counts():
        return len({b['bytes'] for _, b in list(poller.seen)
                    if b.get('state') == 'uploading'})
    try:
        while counts() < distinct:
            before = counts()
            body.step_until('the poller to see new bytes of %s' % image_id,
                            lambda: counts() > before, CHUNK)
    finally:
        body.open()
    assert job.result(120) is None
    wait_image(client, image_id, lambda i: i['status'] == 'active')
    poller.join(30)
    poller.stop()
    return poller.seen


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


# -- glance's own uWSGI settings (testbed.GlanceAPI(uwsgi='glance')) -----

class GlanceIniValve(helpers.Valve):
    """A held upload (helpers.Valve) that glance's own uWSGI settings
    accept: a trickle every 3 s under their ``socket-timeout = 10``, and
    chunks of 512 KiB. Their uWSGI keeps the default chunked-input-limit
    (1 MiB), which refuses python-glanceclient's own 1 MiB chunks ("unable
    to receive chunked part"), whatever the driver."""

    KEEPALIVE = 3.0
    READ_SIZE = 512 * 1024

    def read(self, size=-1):
        if size is None or size < 0 or size > self.READ_SIZE:
            size = self.READ_SIZE
        return super().read(size)


class Timed(threading.Thread):
    """Calls ``ask()`` (a requests call) again and again, ``pause``
    seconds apart, until stopped; keeps (seconds, response) of each."""

    def __init__(self, ask, pause):
        super().__init__(daemon=True)
        self.ask, self.pause = ask, pause
        self.answers = []
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.is_set():
            started = time.monotonic()
            response = self.ask()
            self.answers.append((time.monotonic() - started, response))
            self.stopped.wait(self.pause)

    def stop(self):
        self.stopped.set()
        self.join(120)
        return self.answers


def list_latencies(api, headers, count):
    """Seconds of ``count`` image lists (GET /v2/images), one after the
    other."""
    import requests
    seconds = []
    for _ in range(count):
        started = time.monotonic()
        response = requests.get(api.url + '/v2/images', headers=headers,
                                timeout=120)
        seconds.append(time.monotonic() - started)
        assert response.status_code == 200, response.text
    return seconds


def frozen_memcached_load(api, memcached, image_id, headers, pollers=6,
                          seconds=20.0, pause=0.25, lists=20):
    """Image-list latencies without pollers, then with memcached frozen
    (SIGSTOP) and ``pollers`` clients on GET /v2/images/{image_id}/progress
    for ``seconds``, the image list sampled meanwhile.

    Returns (list seconds without pollers, list seconds with them, the
    progress answers as (seconds, status, Retry-After or None)).
    """
    import requests
    url = '%s/v2/images/%s/progress' % (api.url, image_id)
    # each uWSGI process checks a token once (keystonemiddleware's cache):
    # not in the baseline
    list_latencies(api, headers, 2 * api.workers)
    baseline = list_latencies(api, headers, lists)
    memcached.pause()
    try:
        polling = [Timed(lambda: requests.get(url, headers=headers,
                                              timeout=120), pause)
                   for _ in range(pollers)]
        for poller in polling:
            poller.start()
        deadline = time.monotonic() + seconds
        loaded = []
        while time.monotonic() < deadline:
            loaded += list_latencies(api, headers, 1)
            time.sleep(pause)
        answers = [(s, r.status_code, r.headers.get('Retry-After'))
                   for poller in polling for s, r in poller.stop()]
    finally:
        memcached.resume()
    return baseline, loaded, answers


class Uploader(threading.Thread):
    """glanceclient's upload of ``gate`` (a helpers.Valve over ``size``
    bytes) on a thread: the browser tests hold an upload where they want
    it, whatever the machine's speed.

    ``with uploader:`` starts it; leaving the block lets the client go
    away (``gate.fail()``) and waits for the thread, so a test that fails
    half-way leaves no upload behind.  ``sized=False`` sends no size
    (chunked: glance sees no total)."""

    def __init__(self, client, image_id, gate, size, sized=True):
        super().__init__(daemon=True)
        self.client, self.image_id, self.gate = client, image_id, gate
        self.size, self.sized = size, sized
        self.error = None

    def run(self):
        try:
            self.client.images.upload(
                self.image_id, self.gate,
                image_size=self.size if self.sized else None)
        except Exception as e:  # the test looks at it
            self.error = e

    def finish(self):
        """Let the rest of the body through; glanceclient's error, if any."""
        self.gate.open_to(self.size)
        self.join(120)
        return self.error

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.gate.fail()
        self.join(60)
