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

"""progress_rbd's add() on a real Ceph cluster, loaded as glance loads it."""

import concurrent.futures
import threading
import uuid

import pytest

from glance_store import exceptions

from tests import helpers
from tests.helpers import CHUNK_MIB
from tests.helpers import MiB


@pytest.mark.parametrize('size', [
    0, 1, 4096, MiB, 5 * MiB + 123,
])
@pytest.mark.parametrize('declared', [True, False], ids=['known', 'unknown'])
def test_add_stores_data_and_hashes(single_store, ceph, reader, image_id,
                                    size, declared):
    store = single_store()
    data = helpers.payload(size)
    result = helpers.add_single(store, image_id, helpers.SlowReader(data),
                                len(data) if declared else 0)
    assert helpers.check_stored(ceph, result, image_id, data) == {}
    record = helpers.wait_record(reader, image_id)
    assert (record.state, record.bytes, record.total) == (
        'stored', size, size)
    assert record.backend is None and record.reason is None
    assert helpers.raw_sizes(reader, image_id) == (size, size)


@pytest.mark.parametrize('in_flight', [1, 2, 3, 8])
def test_every_writes_in_flight_setting(single_store, ceph, image_id,
                                        in_flight):
    store = single_store(progress_rbd_writes_in_flight=in_flight)
    data = helpers.payload(9 * MiB + 7, seed=in_flight)
    result = helpers.add_single(store, image_id, helpers.SlowReader(data), 0)
    helpers.check_stored(ceph, result, image_id, data)


def test_unknown_size_chunk_larger_than_resize_step(single_store, ceph,
                                                    image_id):
    # An iterator source decides its own chunk sizes: after a small one, a
    # chunk far larger than the next resize step must still fit.
    store = single_store()
    data = helpers.payload(37 * MiB + 5)
    chunks = iter([data[:100], data[100:]])
    result = helpers.add_single(store, image_id, chunks, 0)
    helpers.check_stored(ceph, result, image_id, data)


def test_thin_provisioning_skips_zero_chunks(single_store, ceph, reader,
                                             image_id):
    store = single_store(rbd_thin_provisioning=True)
    data = (helpers.payload(MiB) + bytes(6 * MiB) + helpers.payload(MiB, 1)
            + bytes(MiB))
    result = helpers.add_single(store, image_id, helpers.SlowReader(data),
                                len(data))
    helpers.check_stored(ceph, result, image_id, data)
    du = ceph.rbd('du', '--format', 'json', '%s/%s' % (helpers.POOL,
                                                       image_id))
    import json
    used = json.loads(du)['images'][0]['used_size']
    assert used <= 3 * MiB, 'zero chunks were written: %d bytes used' % used
    record = helpers.wait_record(reader, image_id)
    assert record.bytes == len(data)  # skipped chunks count as stored


def test_progress_is_monotonic_and_ends_stored(single_store, live_memcached,
                                               image_id):
    store = single_store()
    data = helpers.payload(24 * MiB)
    watcher = helpers.RecordWatcher([live_memcached.address], image_id)
    watcher.start()
    body = helpers.Valve(data, limit=1)  # moves once the watcher saw it
    upload = threading.Thread(target=helpers.add_single,
                              args=(store, image_id, body, 0))
    upload.start()
    try:
        while len(watcher.seen) < 4:
            count = len(watcher.seen)
            body.step_until('the watcher to see the record move', lambda: (
                len(watcher.seen) > count), MiB)
        body.open()
        upload.join(60)
        watcher.wait_for('stored')
    finally:
        body.open()
        upload.join(60)
        watcher.stop()
    seen = watcher.seen
    assert len(seen) >= 5, seen  # progress was seen during the upload
    assert [r.bytes for r in seen] == sorted(r.bytes for r in seen)
    assert all(r.total is None for r in seen if r.state == 'uploading')
    assert seen[-1].state == 'stored' and seen[-1].bytes == len(data)
    assert seen[-1].total == len(data)
    states = [r.state for r in seen]
    assert states.index('finalizing') < states.index('stored')


@pytest.mark.parametrize('min_interval', [0, 1.0])
def test_a_paused_client_sees_every_acknowledged_byte(
        single_store, reader, image_id, min_interval):
    """A client that sent three chunks and pauses (a slow link, a
    paused copy) has three chunks in Ceph: the record says so while the
    store waits for the fourth, also for the chunk that landed within
    progress_min_interval of the one before, not when the client sends
    more."""
    store = single_store(progress_min_interval=min_interval)
    data = helpers.payload(8 * MiB)
    sent = 3 * CHUNK_MIB * MiB
    body = helpers.Valve(data, limit=sent)
    upload = threading.Thread(target=helpers.add_single,
                              args=(store, image_id, body, len(data)))
    upload.start()
    try:
        # well within the Valve's first trickle (KEEPALIVE): the client
        # has sent nothing more when the record gets there
        helpers.wait_record(reader, image_id, state='uploading', nbytes=sent,
                            timeout=body.KEEPALIVE - 1)
        assert body.handed_out == sent
        body.open()
        upload.join(60)
        assert helpers.wait_record(reader, image_id).bytes == len(data)
    finally:
        body.open()
        upload.join(60)


def test_memcached_sets_at_most_one_per_chunk(single_store, image_id):
    store = single_store()
    pub = helpers.publisher_of(store)
    before = pub.stats.updates_sent
    data = helpers.payload(10 * MiB)
    helpers.add_single(store, image_id, helpers.SlowReader(data), len(data))
    chunks = 10
    # start + one per chunk + finalizing + stored, at most
    assert pub.stats.updates_sent - before <= chunks + 3


def test_min_interval_publishes_fewer_updates(single_store, reader,
                                              image_id):
    store = single_store(progress_min_interval=60)
    pub = helpers.publisher_of(store)
    before = pub.stats.updates_sent
    data = helpers.payload(10 * MiB)
    helpers.add_single(store, image_id, helpers.SlowReader(data), len(data))
    # start, finalizing, stored: chunk updates are all within the interval
    assert pub.stats.updates_sent - before <= 3
    assert helpers.wait_record(reader, image_id).bytes == len(data)


def test_progress_disabled_writes_nothing(single_store, ceph, reader,
                                          image_id):
    store = single_store(progress_enabled=False)
    data = helpers.payload(3 * MiB)
    result = helpers.add_single(store, image_id, helpers.SlowReader(data),
                                len(data))
    helpers.check_stored(ceph, result, image_id, data)
    assert reader.get(image_id) is None


def test_key_prefix(single_store, live_memcached, image_id):
    from glance_progress_store.read import reader as reader_mod
    store = single_store(progress_key_prefix='region1:')
    data = helpers.payload(MiB)
    helpers.add_single(store, image_id, helpers.SlowReader(data), len(data))
    prefixed = reader_mod.ProgressReader([live_memcached.address],
                                         prefix='region1:')
    assert helpers.wait_record(prefixed, image_id).bytes == MiB
    plain = reader_mod.ProgressReader([live_memcached.address])
    assert plain.get(image_id) is None


def test_concurrent_unknown_size_uploads_one_process(single_store, ceph,
                                                     reader, cleanup):
    store = single_store()
    ids = [str(uuid.uuid4()) for _ in range(8)]
    cleanup.extend(ids)
    sources = {i: helpers.payload(3 * MiB + n * 333_333, seed=n)
               for n, i in enumerate(ids)}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = {i: pool.submit(helpers.add_single, store, i,
                                  helpers.SlowReader(d, pause=0.002), 0)
                   for i, d in sources.items()}
        results = {i: f.result() for i, f in futures.items()}
    for i, data in sources.items():
        helpers.check_stored(ceph, results[i], i, data)
        record = helpers.wait_record(reader, i)
        assert (record.state, record.bytes) == ('stored', len(data))


def test_concurrent_uploads_share_the_process_budget(single_store, ceph,
                                                     reader, cleanup):
    """Eight uploads, room for four writes beyond their first: all are
    stored, the bytes in flight beyond each upload's first never exceed
    the budget, and all of it is given back."""
    from glance_progress_store.upload import budget
    store = single_store(progress_rbd_writes_in_flight=8,
                         progress_rbd_process_in_flight_mib=4 * CHUNK_MIB)
    process = budget.for_store('progress_rbd', 4 * CHUNK_MIB * MiB)
    process.peak = 0
    ids = [str(uuid.uuid4()) for _ in range(8)]
    cleanup.extend(ids)
    sources = {i: helpers.payload(12 * CHUNK_MIB * MiB + n, seed=n)
               for n, i in enumerate(ids)}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = {i: pool.submit(helpers.add_single, store, i,
                                  helpers.SlowReader(d, pause=0.001),
                                  len(d))
                   for i, d in sources.items()}
        results = {i: f.result() for i, f in futures.items()}
    for i, data in sources.items():
        helpers.check_stored(ceph, results[i], i, data)
        assert helpers.wait_record(reader, i).state == 'stored'
    assert 0 < process.peak <= process.capacity
    assert (process.used, process.uploads) == (0, 0)


def test_a_failed_upload_gives_its_budget_back(single_store, ceph,
                                               image_id):
    from glance_progress_store.upload import budget
    store = single_store(progress_rbd_writes_in_flight=8)
    with pytest.raises(exceptions.Invalid):
        helpers.add_single(store, image_id, helpers.SlowReader(
            helpers.payload(9 * CHUNK_MIB * MiB)), 8 * CHUNK_MIB * MiB)
    process = budget.for_store('progress_rbd', 128 * MiB)  # the default
    assert (process.used, process.uploads) == (0, 0)
    assert image_id not in ceph.images(helpers.POOL)


# --- failures -------------------------------------------------------------

def test_duplicate_leaves_existing_image_and_record(single_store, ceph,
                                                    reader, image_id):
    store = single_store()
    data = helpers.payload(2 * MiB)
    helpers.add_single(store, image_id, helpers.SlowReader(data), len(data))
    before = helpers.wait_record(reader, image_id)
    with pytest.raises(exceptions.Duplicate):
        helpers.add_single(store, image_id,
                           helpers.SlowReader(helpers.payload(MiB, 9)), MiB)
    assert helpers.read_rbd(ceph, helpers.POOL, image_id, 'snap')[0] == data
    assert reader.get(image_id) == before


@pytest.mark.parametrize('actual', [3 * MiB - 1, 3 * MiB + 1, 5 * MiB],
                         ids=['short', 'one-byte-long', 'long'])
def test_size_mismatch_is_invalid_and_leaves_nothing(single_store, ceph,
                                                     reader, image_id,
                                                     actual):
    store = single_store()
    with pytest.raises(exceptions.Invalid, match='expected 3145728 bytes'):
        helpers.add_single(store, image_id,
                           helpers.SlowReader(helpers.payload(actual)),
                           3 * MiB)
    assert not helpers.rbd_exists(ceph, helpers.POOL, image_id)
    record = helpers.wait_record(reader, image_id, state='failed')
    assert (record.state, record.reason) == ('failed', 'size_mismatch')


class ExplodingVerifier:
    """Stands in for cursive's verifier: the real one only fails later, in
    glance's verify(); here update() itself fails, as a broken verifier
    would, to prove the store cleans up and re-raises the original."""

    def __init__(self, fail_after):
        self.calls = 0
        self.fail_after = fail_after

    def update(self, chunk):
        self.calls += 1
        if self.calls > self.fail_after:
            raise RuntimeError('verifier exploded')


def test_verifier_error_reraised_after_cleanup(single_store, ceph, reader,
                                               image_id):
    store = single_store()
    with pytest.raises(RuntimeError, match='verifier exploded'):
        helpers.add_single(store, image_id,
                           helpers.SlowReader(helpers.payload(6 * MiB)),
                           6 * MiB, verifier=ExplodingVerifier(2))
    assert not helpers.rbd_exists(ceph, helpers.POOL, image_id)
    record = helpers.wait_record(reader, image_id, state='failed')
    assert record.reason == 'verifier_failed'


def test_verifier_sees_every_byte(single_store, image_id):
    class Collecting:
        def __init__(self):
            self.data = bytearray()

        def update(self, chunk):
            self.data += chunk

    store = single_store()
    data = helpers.payload(4 * MiB + 11)
    verifier = Collecting()
    helpers.add_single(store, image_id, helpers.SlowReader(data), 0,
                       verifier=verifier)
    assert bytes(verifier.data) == data


def test_source_error_reraised_after_cleanup(single_store, ceph, reader,
                                             image_id):
    store = single_store()
    source = helpers.SlowReader(helpers.payload(8 * MiB), fail_at=3 * MiB)
    with pytest.raises(IOError, match='client went away'):
        helpers.add_single(store, image_id, source, 8 * MiB)
    assert not helpers.rbd_exists(ceph, helpers.POOL, image_id)
    record = helpers.wait_record(reader, image_id, state='failed')
    assert record.reason == 'source_error'
    assert record.bytes <= 3 * MiB
