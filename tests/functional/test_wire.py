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

"""The progress record reads the same through every memcached client.

Dashboards that show these bars are written in PHP, Java, Go or Python:
the store writes every value as plain bytes with flags 0, so each client
hands back the same bytes. python-memcached's own integer (2) and text
(16) flags mean "compressed" to PHP's and Java's clients.
"""

import json
import socket
import subprocess

import pymemcache.client.base
import pytest

import memcache
import testbed

from glance_progress_store import records

from tests import helpers

MiB = helpers.MiB

PHP_READER = r'''
$m = new Memcached();
$m->addServer($argv[1], (int)$argv[2]);
$out = [];
foreach (array_slice($argv, 3) as $key) {
    $r = $m->get($key, null, Memcached::GET_EXTENDED);
    if ($r === false) {
        fwrite(STDERR, "get $key: " . $m->getResultMessage() . "\n");
        exit(1);
    }
    $out[$key] = ['flags' => $r['flags'], 'hex' => bin2hex($r['value'])];
}
echo json_encode($out);
'''


@pytest.fixture(scope='module')
def php():
    testbed.ensure_packages(testbed.packages.CLIENT_PACKAGES)
    return 'php'


def _raw_get(address, keys):
    host, port = address.rsplit(':', 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b'get %s\r\n' % b' '.join(k.encode() for k in keys))
        data = b''
        while not data.endswith(b'END\r\n'):
            chunk = sock.recv(65536)
            assert chunk, 'connection closed'
            data += chunk
    values = {}
    while data.startswith(b'VALUE '):
        header, data = data.split(b'\r\n', 1)
        _, key, flags, length = header.split()
        values[key.decode()] = (int(flags), data[:int(length)])
        data = data[int(length) + 2:]
    return values


def _php_get(php, address, keys):
    host, port = address.rsplit(':', 1)
    out = subprocess.run([php, '-r', PHP_READER, host, port, *keys],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return {k: (v['flags'], bytes.fromhex(v['hex']))
            for k, v in json.loads(out.stdout).items()}


def _pymemcache_get(address, keys):
    host, port = address.rsplit(':', 1)
    client = pymemcache.client.base.Client(
        (host, int(port)), deserializer=lambda k, v, flags: (flags, v))
    try:
        return client.get_many(keys)
    finally:
        client.close()


def _python_memcached_get(address, keys):
    # What a python-memcached dashboard gets: flags 0 means bytes as is.
    client = memcache.Client([address])
    try:
        return {k: (0, v) for k, v in client.get_multi(keys).items()
                if isinstance(v, bytes)}
    finally:
        client.disconnect_all()


def test_record_reads_identically_through_four_clients(
        single_store, live_memcached, reader, image_id, php):
    store = single_store()
    data = helpers.payload(3 * MiB + 17)
    helpers.add_single(store, image_id, helpers.SlowReader(data), len(data))
    record = helpers.wait_record(reader, image_id)
    keys = list(records.keys_for(image_id).all())

    raw = _raw_get(live_memcached.address, keys)
    assert sorted(raw) == sorted(keys)
    assert {flags for flags, _ in raw.values()} == {0}
    total, uploading, status = (raw[k][1] for k in keys)
    assert total == uploading == b'%d' % len(data)
    assert json.loads(status.decode('utf-8')) == json.loads(record.to_json())

    assert _pymemcache_get(live_memcached.address, keys) == raw
    assert _php_get(php, live_memcached.address, keys) == raw
    assert _python_memcached_get(live_memcached.address, keys) == raw
