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

"""Real failures below the store: a full pool, a dead or frozen memcached."""

import contextlib
import threading
import time
import uuid

import pytest

from glance_store import exceptions

from glance_progress_store.upload import publisher
from tests import helpers
from tests.helpers import MiB

QUOTA_POOL = 'quota'


@pytest.fixture(scope='module')
def quota_pool(ceph):
    """A pool with a 16 MiB quota; quotas need a mgr feeding pool usage."""
    ceph.start_mgr()
    ceph.create_pool(QUOTA_POOL)
    ceph.set_pool_quota(QUOTA_POOL, 16 * MiB)
    yield QUOTA_POOL
    ceph.set_pool_quota(QUOTA_POOL, 0)
    for name in ceph.images(QUOTA_POOL):
        helpers.remove_image(ceph, QUOTA_POOL, name)


@pytest.mark.parametrize('in_flight', [1, 8])
def test_pool_quota_reached_mid_upload_is_storage_full(
        single_store, ceph, reader, quota_pool, in_flight):
    # A write refused mid-pipeline, with one write or many in flight.
    store = single_store(rbd_store_pool=quota_pool,
                         progress_rbd_writes_in_flight=in_flight)
    image_id = str(uuid.uuid4())
    size = 256 * MiB
    # A slow source: the quota is crossed after 16 MiB, the mon flags the
    # pool full a few seconds later, and the next writes must fail fast.
    source = helpers.SlowReader(helpers.payload(size), pause=0.05)
    started = time.monotonic()
    with pytest.raises(exceptions.StorageFull):
        helpers.add_single(store, image_id, source, size)
    elapsed = time.monotonic() - started
    assert elapsed < 60, 'took %.1fs to notice the full pool' % elapsed
    assert not helpers.rbd_exists(ceph, quota_pool, image_id)
    record = helpers.wait_record(reader, image_id, state='failed')
    assert (record.state, record.reason) == ('failed', 'storage_full')
    assert 16 * MiB <= record.bytes < size
    ceph.wait_pool_full(quota_pool, full=False, timeout=60)


def test_upload_into_full_pool_fails_at_once(single_store, ceph, reader,
                                             quota_pool):
    store = single_store(rbd_store_pool=quota_pool)
    with _filled(ceph, quota_pool, 32 * MiB):
        image_id = str(uuid.uuid4())
        started = time.monotonic()
        with pytest.raises(exceptions.StorageFull):
            helpers.add_single(store, image_id,
                               helpers.SlowReader(helpers.payload(4 * MiB)),
                               4 * MiB)
        assert time.monotonic() - started < 10
        assert not helpers.rbd_exists(ceph, quota_pool, image_id)
        record = reader.get(image_id)
        assert record is None or record.reason == 'storage_full'


@contextlib.contextmanager
def _filled(ceph, pool, size):
    """A pool over its quota, filled with plain objects.

    Written and deleted in full-try mode: otherwise librados blocks every
    write, and the removal, once the mon has flagged the pool full.
    """
    import rados
    names = ['filler-%d' % n for n in range(size // (4 * MiB))]
    with rados.Rados(conffile=ceph.conf_path) as cluster:
        with cluster.open_ioctx(pool) as ioctx:
            ioctx.set_osdmap_full_try()
            for name in names:
                try:
                    ioctx.write_full(name, helpers.payload(4 * MiB))
                except rados.Error:
                    break  # flagged full already
            ceph.wait_pool_full(pool, timeout=60)
            try:
                yield
            finally:
                for name in names:
                    try:
                        ioctx.remove_object(name)
                    except rados.ObjectNotFound:
                        pass
    ceph.wait_pool_full(pool, full=False, timeout=60)


def test_memcached_down_upload_succeeds_and_record_written_later(
        single_store, ceph, live_memcached, reader, image_id):
    store = single_store()
    data = helpers.payload(6 * MiB)
    live_memcached.stop()
    started = time.monotonic()
    result = helpers.add_single(store, image_id, helpers.SlowReader(data),
                                len(data))
    elapsed = time.monotonic() - started
    helpers.check_stored(ceph, result, image_id, data)
    # the only wait memcached may cost: the final record's flush timeout
    assert elapsed < 5, elapsed
    live_memcached.start()
    record = helpers.wait_record(reader, image_id, timeout=20)
    assert record is not None and record.state == 'stored', record
    assert record.bytes == len(data)


def test_memcached_frozen_mid_upload(single_store, ceph, live_memcached,
                                     reader, image_id):
    store = single_store()
    data = helpers.payload(12 * MiB)
    source = helpers.SlowReader(data, pause=0.02)
    baseline_started = time.monotonic()
    helpers.add_single(store, str(image_id) + '-baseline',
                       helpers.SlowReader(data, pause=0.02), len(data))
    baseline = time.monotonic() - baseline_started
    helpers.remove_image(ceph, helpers.POOL, str(image_id) + '-baseline')

    freezer = threading.Timer(0.2, live_memcached.pause)
    freezer.start()
    started = time.monotonic()
    try:
        result = helpers.add_single(store, image_id, source, len(data))
        elapsed = time.monotonic() - started
    finally:
        freezer.join()
        live_memcached.resume()
    helpers.check_stored(ceph, result, image_id, data)
    # The extra time is bounded by the final flush (socket timeout 0.3 s);
    # allow generous margin for a shared machine.
    assert elapsed - baseline < 3.0, (elapsed, baseline)
    record = helpers.wait_record(reader, image_id, timeout=20)
    assert record.state == 'stored' and record.bytes == len(data)


def test_warning_logged_once_per_upload(single_store, live_memcached,
                                        image_id, caplog, monkeypatch):
    # A publisher of its own (the session's carry other tests' state) and
    # no discovery index: the upload's first write to memcached is its
    # record. (A failed index registration warns nothing.)
    store = single_store(progress_socket_timeout=0.29,
                         progress_discovery=False)
    pub = helpers.publisher_of(store)
    assert pub.stats == publisher.PublisherStats()
    [queue] = pub._queues
    live_memcached.stop()
    with caplog.at_level('WARNING', logger='glance_progress_store'):
        helpers.add_single(store, image_id,
                           helpers.SlowReader(helpers.payload(5 * MiB)),
                           5 * MiB)
        helpers.wait_for('a failed write', lambda: (
            pub.stats.server_failures == 1), 30)
        # the record is retried: memcached answers a probe, and is gone
        # again before the write (the publisher waits SETTLE after a
        # probe, long enough here to stop it), so that the same record
        # fails a second time
        helpers.wait_for('three failed probes', lambda: (
            pub.stats.probes >= 3), 60)
        monkeypatch.setattr(publisher, 'SETTLE', 5.0)
        live_memcached.start()
        helpers.wait_for('a probe answered', lambda: (
            not queue.needs_probe), 60, interval=0.01)
        live_memcached.stop()
        helpers.wait_for('a second failed write', lambda: (
            pub.stats.server_failures == 2), 30)
    warnings = [r for r in caplog.records
                if 'Could not publish' in r.getMessage()
                and image_id in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]


def test_down_from_the_start_with_discovery_is_warned_once(
        single_store, live_memcached, image_id, caplog):
    # With discovery on, the index registration is the publisher's first
    # call and fails; the record itself is never sent. Before, nothing was
    # warned: only a failed record write warned.
    # a socket timeout no other test uses: a publisher of its own
    store = single_store(progress_socket_timeout=0.27,
                         progress_discovery=True)
    pub = helpers.publisher_of(store)
    assert pub.stats == publisher.PublisherStats()
    live_memcached.stop()
    with caplog.at_level('WARNING', logger='glance_progress_store'):
        helpers.add_single(store, image_id,
                           helpers.SlowReader(helpers.payload(5 * MiB)),
                           5 * MiB)
        helpers.wait_for('three failed probes', lambda: (
            pub.stats.probes >= 3), 60)
    warnings = [r.getMessage() for r in caplog.records
                if 'Could not publish' in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert image_id in warnings[0] and live_memcached.address in warnings[0]
    assert pub.stats.updates_sent == 0


def test_one_of_two_memcached_down_record_lands_where_readers_look(
        single_store, ceph, live_memcached, image_id):
    # python-memcached moves the keys of a dead server to another one and
    # does not report them as failed; once the server is back, readers
    # look there again, so the publisher must write them there too.
    from glance_progress_store.read import reader as reader_mod
    import testbed
    other = testbed.Memcached()
    other.start()
    try:
        servers = [live_memcached.address, other.address]
        store = single_store(progress_memcached_servers=servers)
        live_memcached.stop()
        data = helpers.payload(4 * MiB)
        helpers.add_single(store, image_id, helpers.SlowReader(data),
                           len(data))
        live_memcached.start()
        record = helpers.wait_record(reader_mod.ProgressReader(servers),
                                     image_id, timeout=20)
        assert record is not None and record.state == 'stored', record
        assert record.bytes == len(data)
    finally:
        other.stop()
