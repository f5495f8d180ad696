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

"""The one server-list grammar: what python-memcached can connect to."""

import pytest

from glance_progress_store import _memcache


@pytest.mark.parametrize('entry', [
    '127.0.0.1:11211', 'memcached.example.org:11211', 'localhost',
    'inet:127.0.0.1:11211', 'inet6:[::1]:11211', 'inet6:[fd00::5]:1',
    'unix:/run/memcached/memcached.sock',
])
def test_accepted_entries_are_what_the_client_parses(entry):
    assert _memcache.parse_server(entry) == entry
    # and the client connects to exactly that (no ValueError later)
    connection = _memcache.Connection(entry, 0.1)
    connection.close()


@pytest.mark.parametrize('entry,why', [
    ('127.0.0.1:11211 127.0.0.1:11212', 'separate servers with commas'),
    ('[::1]:11211', 'inet6:\\[::1\\]:11211'),
    ('inet6:::1:11211', 'is not one of'),
    ('host:0', 'port must be 1 to 65535'),
    ('host:65536', 'port must be 1 to 65535'),
    (':11211', 'is not one of'),
    ('host:port', 'is not one of'),
    ('   ', 'empty'),
])
def test_refused_entries_say_why(entry, why):
    with pytest.raises(_memcache.BadServer, match=why):
        _memcache.parse_server(entry)


def test_lists_from_options_and_command_lines():
    assert _memcache.parse_servers(['a:1', ' b:2 ', '']) == ('a:1', 'b:2')
    assert _memcache.parse_servers('a:1,b:2,') == ('a:1', 'b:2')
    with pytest.raises(_memcache.BadServer, match='no memcached server'):
        _memcache.parse_servers([])


def test_server_index_is_python_memcached_rule():
    import memcache
    keys = ['%d_upload_status' % n for n in range(200)]
    client = memcache.Client(['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'])
    for key in keys:
        expected = client.buckets[memcache.cmemcache_hash(key.encode()) % 3]
        index = _memcache.server_index(key, 3)
        assert client.servers[index] is expected
    assert {_memcache.server_index(k, 3) for k in keys} == {0, 1, 2}
    assert {_memcache.server_index(k, 1) for k in keys} == {0}


def test_unanswered_server_is_server_unavailable():
    # A port nothing listens on (bound, never listening): refused at once.
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        address = '127.0.0.1:%d' % sock.getsockname()[1]
        connection = _memcache.Connection(address, 0.5)
        for call in (connection.version, lambda: connection.get_many(['k']),
                     lambda: connection.set_many({'k': b'1'}, 10)):
            with pytest.raises(_memcache.ServerUnavailable,
                               match='refused'):
                call()


def test_values_must_be_bytes():
    connection = _memcache.Connection('127.0.0.1:1', 0.1)
    with pytest.raises(TypeError, match='bytes'):
        connection.set_many({'k': 10}, 10)
