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

"""Discovery against real memcached: every upload found, no id needed.

The memcached here also holds 200,000 foreign keys, as a Keystone token
cache would: discovery never walks them (three reads per server).
"""

import multiprocessing
import os
import time
import uuid

import pytest

import testbed

from glance_progress_store import _memcache
from glance_progress_store.read import discovery
from glance_progress_store.read import sources
from glance_progress_store import records
from glance_progress_store.upload import publisher

from tests import helpers

MiB = helpers.MiB
FOREIGN_KEYS = 200000
INDEX = (30, 600)  # index TTL, retention


@pytest.fixture(scope='module')
def crowded():
    """A memcached of its own, holding 200,000 keys that are not ours."""
    with testbed.Memcached(memory_mb=512) as server:
        connection = _memcache.Connection(server.address, 5)
        value = b'x' * 80
        for start in range(0, FOREIGN_KEYS, 5000):
            connection.set_many({'keystone.token.%d' % n: value
                                 for n in range(start, start + 5000)}, 0)
        connection.close()
        yield server


@pytest.fixture(scope='module')
def second():
    with testbed.Memcached() as server:
        yield server


def _settings(*servers, prefix=''):
    source = sources.Source(tuple(s.address for s in servers), prefix)
    return sources.Settings([source], {})


def _record(state, nbytes=1, total=10, updated_at=None, started_at=None):
    now = time.time()
    return records.ProgressRecord(state, nbytes, total, None,
                                  started_at or now,
                                  updated_at or now, None)


def _publish(pub, prefix, image_id, record, final=False):
    token = (prefix, image_id, None)
    pub.submit(token, records.key_values(
        records.keys_for(image_id, None, prefix), record), 600, final,
        index=INDEX)
    assert pub.flush(token, 10)


def _wait_listed(settings, expected, since=None, timeout=30):
    """Until discovery lists exactly ``expected``; the snapshot."""
    last = []

    def listed():
        last[:] = [discovery.discover(settings, since=since)]
        return {v.image_id for v in last[0].views} == expected and last[0]
    return helpers.wait_for('discovery to list %s' % sorted(expected),
                            listed, timeout, interval=0.1,
                            on_timeout=lambda: ': %s' % last)


def test_store_uploads_are_listed_while_in_flight(single_store, crowded,
                                                  image_id):
    import threading
    store = single_store(progress_memcached_servers=[crowded.address])
    settings = _settings(crowded)
    data = helpers.payload(12 * MiB)
    body = helpers.Valve(data, limit=1)  # in flight until listed
    upload = threading.Thread(target=helpers.add_single, args=(
        store, image_id, body, len(data)))
    upload.start()
    try:
        during = body.step_until('discovery to list the upload with bytes',
                                 lambda: [v for v in discovery.discover(
                                     settings).views
                                     if v.image_id == image_id and v.bytes],
                                 MiB)
    finally:
        body.open()
        upload.join()
    assert during[0].state == 'uploading'
    assert during[0].total == len(data)
    after = discovery.discover(settings)
    assert image_id not in {v.image_id for v in after.views}
    stored = [v for v in discovery.discover(settings, since=60).views
              if v.image_id == image_id]
    assert [(v.state, v.bytes) for v in stored] == [('stored', len(data))]


def _child(addresses, prefix, ids, barrier, done):
    pub = publisher.get_publisher(addresses, 1.0)
    barrier.wait()  # every process starts its uploads at the same moment
    for image_id in ids:
        _publish(pub, prefix, image_id, _record('uploading'))
    done.wait()  # stay alive (index registered) until the parent looked
    # multiprocessing ends its children with os._exit(): run the exit
    # hook a normal interpreter exit runs (the publisher's), and only
    # that one: the other hooks of this fork of pytest are pytest's own
    # (its temporary directories, the session's Ceph among them).
    publisher._unregister_at_exit()


@pytest.mark.parametrize('round', range(3))
def test_concurrent_starts_lose_no_index_entry(crowded, second, round):
    """16 upload starts from 4 processes, registering at once (cas)."""
    servers = [crowded, second]
    addresses = [s.address for s in servers]
    prefix = 'race%d-%s:' % (round, uuid.uuid4().hex[:6])
    context = multiprocessing.get_context('fork')
    barrier, done = context.Barrier(4), context.Event()
    ids = [[str(uuid.uuid4()) for _ in range(4)] for _ in range(4)]
    children = [context.Process(target=_child,
                                args=(addresses, prefix, i, barrier, done))
                for i in ids]
    for child in children:
        child.start()
    try:
        expected = {i for group in ids for i in group}
        snapshot = _wait_listed(_settings(*servers, prefix=prefix), expected)
        assert {v.image_id for v in snapshot.views} == expected
        for server in servers:  # one registry entry per process & server
            registry = _memcache.Connection(server.address, 2).get_many(
                [records.registry_key(prefix)])
            entries = records.parse_registry(
                registry[records.registry_key(prefix)].data)
            assert 1 <= len(entries) <= 4
    finally:
        done.set()
        for child in children:
            child.join(30)
    assert [c.exitcode for c in children] == [0, 0, 0, 0]
    # a clean exit takes each process's index out of the registry
    for server in servers:
        value = _memcache.Connection(server.address, 2).get_many(
            [records.registry_key(prefix)])[records.registry_key(prefix)]
        assert records.parse_registry(value.data) == {}
    assert discovery.discover(_settings(*servers, prefix=prefix)).views == ()


def test_python_memcached_cas_without_gets_is_refused(crowded):
    connection = _memcache.Connection(crowded.address, 2)
    key = 'cas-test-%s' % uuid.uuid4().hex
    with pytest.raises(_memcache.MemcachedError, match='without a gets'):
        connection.cas(key, b'x', 10)
    assert connection.add(key, b'1', 10)
    assert not connection.add(key, b'2', 10)
    assert connection.gets(key).data == b'1'
    other = _memcache.Connection(crowded.address, 2)
    other.set_many({key: b'changed'}, 10)
    assert connection.cas(key, b'3', 10) is False  # someone else won
    assert connection.gets(key).data == b'changed'
    assert connection.cas(key, b'4', 10) is True


def test_stalled_then_gone_when_the_process_index_expires(crowded):
    """A process that stops updating (killed): stalled, then gone."""
    prefix = 'killed-%s:' % uuid.uuid4().hex[:6]
    image_id = str(uuid.uuid4())
    index_ttl = 10
    context = multiprocessing.get_context('fork')
    kill = context.Event()

    def killed():
        pub = publisher.Publisher([crowded.address], 1.0)
        token = (prefix, image_id, None)
        pub.submit(token, records.key_values(
            records.keys_for(image_id, None, prefix),
            _record('uploading')), 600, index=(index_ttl, 600))
        pub.flush(token, 10)
        kill.wait(120)  # until the parent has seen the upload listed
        os.kill(os.getpid(), 9)

    settings = _settings(crowded, prefix=prefix)
    child = context.Process(target=killed)
    child.start()
    try:
        listed = _wait_listed(settings, {image_id})
    finally:
        kill.set()
        child.join(30)
    assert child.exitcode == -9
    assert [v.state for v in listed.views] == ['uploading']
    record = listed.views[0]

    # Nothing updates the record any more: stalled once stall_after has
    # passed since its last update (the clock is discover's ``now``).
    def states(stall_after, after):
        return [(v.image_id, v.state) for v in discovery.discover(
            settings, stall_after=stall_after,
            now=record.updated_at + after).views]
    assert states(2, 1.9) == [(image_id, 'uploading')]
    assert states(2, 2.1) == [(image_id, 'stalled')]

    # Then gone with the dead process's index (index_ttl after its last
    # write), while its record still says uploading.
    index_keys = records.parse_registry(_memcache.Connection(
        crowded.address, 2).get_many([records.registry_key(prefix)])[
            records.registry_key(prefix)].data)
    helpers.wait_for('the dead process\'s upload to leave the list',
                     lambda: not discovery.discover(settings).views,
                     index_ttl + 30, interval=0.5)
    connection = _memcache.Connection(crowded.address, 2)
    assert connection.get_many(list(index_keys)) == {}  # the index expired
    status = records.keys_for(image_id, None, prefix).status
    assert status in connection.get_many([status])


def test_one_server_down_lists_the_rest(crowded):
    down = testbed.Memcached()  # a port nobody listens on
    pub = publisher.Publisher([crowded.address, down.address], 0.3)
    prefix = 'half-%s:' % uuid.uuid4().hex[:6]
    on_live = []
    while len(on_live) < 3:
        image_id = str(uuid.uuid4())
        key = records.keys_for(image_id, None, prefix).status
        if _memcache.server_index(key, 2) == 0:
            on_live.append(image_id)
            token = (prefix, image_id, None)
            pub.submit(token, records.key_values(
                records.keys_for(image_id, None, prefix),
                _record('uploading')), 600, index=INDEX)
            pub.flush(token, 5, skip_down=True)
    settings = sources.Settings([sources.Source(
        (crowded.address, down.address), prefix)], {})
    last = []

    def listed():
        last[:] = [discovery.discover(settings, socket_timeout=0.5)]
        return {v.image_id for v in last[0].views} == set(on_live) and last[0]
    snapshot = helpers.wait_for('the live server\'s uploads listed', listed,
                                30, interval=0.1,
                                on_timeout=lambda: ': %s' % last)
    assert list(snapshot.unreadable) == [down.address]
    assert 'refused' in snapshot.unreadable[down.address]
