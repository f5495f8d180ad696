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

"""The CLI against a memcached that is frozen, gone, or not a memcached.

Each is "unreachable" (exit 4) with one line saying which server and
why, answered within the socket timeout, never a traceback; a size value
that is not ASCII decimal is ``bad`` (exit 3).
"""

import http.server
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

from glance_progress_store import records

from tests import helpers


def _cli(*args, timeout=30):
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, '-m', 'glance_progress_store.cmd.cli', *args],
        capture_output=True, text=True, timeout=timeout)
    return out, time.monotonic() - started


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield '127.0.0.1:%d' % server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_socket():
    """Accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(16)
    yield '127.0.0.1:%d' % sock.getsockname()[1]
    sock.close()


def _assert_unreachable(out, elapsed, server, why):
    assert out.returncode == 4, out
    assert 'Traceback' not in out.stderr + out.stdout
    assert server in out.stdout + out.stderr
    assert why in out.stdout + out.stderr
    # the CLI's socket timeout is 3 s: one probe, not one per key
    assert elapsed < 10


@pytest.mark.parametrize('command', ['show', 'watch'])
def test_frozen_memcached(live_memcached, command):
    image_id = str(uuid.uuid4())
    live_memcached.pause()
    try:
        out, elapsed = _cli(command, image_id, '--servers',
                            live_memcached.address, '--stall-after', '1')
    finally:
        live_memcached.resume()
    _assert_unreachable(out, elapsed, live_memcached.address,
                        'did not answer')


@pytest.mark.parametrize('command', ['show', 'watch'])
def test_socket_that_never_answers(silent_socket, command):
    out, elapsed = _cli(command, str(uuid.uuid4()), '--servers',
                        silent_socket, '--stall-after', '1')
    _assert_unreachable(out, elapsed, silent_socket, 'did not answer')


def test_http_server_is_not_memcached(http_server):
    out, elapsed = _cli('show', str(uuid.uuid4()), '--servers', http_server)
    _assert_unreachable(out, elapsed, http_server,
                        'is not a memcached server')


def test_one_line_per_problem(http_server, silent_socket):
    out, _ = _cli('show', '--json', str(uuid.uuid4()), '--servers',
                  '%s,%s' % (http_server, silent_socket))
    assert out.returncode == 4
    assert 'Traceback' not in out.stderr
    assert http_server in out.stdout and silent_socket in out.stdout


@pytest.mark.parametrize('value', ['²', '٣', '1e3', '-1', ' 5'])
def test_size_that_is_not_ascii_decimal_is_bad(live_memcached, value):
    import memcache
    image_id = str(uuid.uuid4())
    keys = records.keys_for(image_id)
    record = records.ProgressRecord('uploading', 1, 2, None, 1.0, 1.0)
    client = memcache.Client([live_memcached.address])
    client.set_multi(records.key_values(keys, record))
    client.set(keys.total, value.encode('utf-8'))
    out, _ = _cli('show', image_id, '--servers', live_memcached.address)
    assert out.returncode == 3, out
    assert 'state:    bad' in out.stdout
    assert 'not a decimal size' in out.stdout
    assert 'Traceback' not in out.stderr


def test_reader_raises_unavailable_not_timeout(live_memcached):
    from glance_progress_store import _memcache
    from glance_progress_store.read import reader as reader_mod
    reader = reader_mod.ProgressReader([live_memcached.address],
                                       socket_timeout=0.3)
    live_memcached.pause()
    try:
        with pytest.raises(_memcache.ServerUnavailable,
                           match='did not answer get within 0.3 s'):
            reader.get(str(uuid.uuid4()))
    finally:
        live_memcached.resume()
    assert reader.get(str(uuid.uuid4())) is None  # reconnects at once
    assert helpers.MiB  # the shared helpers import in this tier


@pytest.mark.parametrize('form', ['inet:%s', '%s'])
def test_healthy_server_in_every_form_answers(live_memcached, form):
    # reader.check_servers used to add "inet:" instead of stripping it:
    # a healthy inet: server was reported as not answering
    from glance_progress_store.read import reader as reader_mod
    server = form % live_memcached.address
    reader_mod.ProgressReader([server]).check_servers()
    out, _ = _cli('show', str(uuid.uuid4()), '--servers', server)
    assert out.returncode == 3, out  # unknown: answered, no record
    assert 'state:    unknown' in out.stdout
