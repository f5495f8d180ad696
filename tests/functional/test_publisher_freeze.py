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

"""The final record survives a frozen memcached, in every interleaving.

memcached is paused with SIGSTOP (its sockets stay open and keep taking
data, nothing answers), at different moments of an upload's stream of
updates and for different lengths, with one and with two servers. A set
that timed out sits unread in the frozen server's socket buffer and is
executed when it resumes, in any order with newer ones: the record must
still end as the final state, and stay so.
"""

import itertools
import os
import time
import uuid

import pytest

import testbed

from glance_progress_store.read import reader as reader_mod
from glance_progress_store import records
from glance_progress_store.upload import publisher
from tests import helpers

TIMEOUT = 0.3  # progress_socket_timeout of the test publisher
UPDATES = 40
REPEATS = int(os.environ.get('GPS_FREEZE_REPEATS', '2'))
# How long the final record may take to appear after the server resumes
# (probe backoff of at most 5 s, then the settle time), and how long it
# must then stay.
APPEAR_WITHIN = 10.0
STAYS_FOR = 2.0


@pytest.fixture(scope='module')
def second_memcached():
    with testbed.Memcached() as server:
        yield server


@pytest.fixture
def servers(request, live_memcached, second_memcached):
    if request.param == 1:
        return [live_memcached]
    return [live_memcached, second_memcached]


def _record(state, nbytes, total, started):
    return records.ProgressRecord(state, nbytes, total, None, started,
                                  time.time())


def _submit(pub, token, keys, record, final=False):
    pub.submit(token, records.key_values(keys, record), 600, final)


CASES = list(itertools.product(
    ['mid-stream', 'final'],  # what the freeze catches
    [0.15, 0.6, 2.0],  # shorter and longer than the socket timeout
    range(REPEATS)))


@pytest.mark.parametrize('servers', [1, 2], indirect=True,
                         ids=['one-server', 'two-servers'])
@pytest.mark.parametrize('moment,length,repeat', CASES,
                         ids=['%s-%gs-%d' % c for c in CASES])
def test_final_state_wins_after_a_freeze(servers, moment, length, repeat):
    addresses = [s.address for s in servers]
    # A publisher of its own: one process, one publisher per server list
    # in the store, but here each case starts clean.
    pub = publisher.Publisher(addresses, TIMEOUT)
    image_id = str(uuid.uuid4())
    keys = records.keys_for(image_id)
    token = ('', image_id, None)
    total = UPDATES * 1000
    started = time.time()
    # Freeze the server that holds the status key: with two servers the
    # sizes may live on the other one, which keeps answering.
    frozen = servers[records_index(keys.status, len(servers))]
    freeze_at = UPDATES // 2 if moment == 'mid-stream' else UPDATES
    try:
        for n in range(UPDATES):
            if n == freeze_at:
                frozen.pause()
                paused = time.monotonic()
            _submit(pub, token, keys,
                    _record('uploading', n * 1000, total, started))
            time.sleep(0.005)
        if moment == 'final':
            pub.flush(token, 5)  # every update sent and acknowledged
            frozen.pause()
            paused = time.monotonic()
        final = _record('stored', total, total, started)
        began = time.monotonic()
        _submit(pub, token, keys, final, final=True)
        pub.flush(token, TIMEOUT, skip_down=True)
        # the upload's wait for its final record stays bounded
        assert time.monotonic() - began < TIMEOUT + 1.0
        time.sleep(max(0.0, length - (time.monotonic() - paused)))
    finally:
        frozen.resume()

    reader = reader_mod.ProgressReader(addresses, socket_timeout=2)
    helpers.wait_for('the final record after memcached resumed', lambda: (
        reader.get(image_id) == final), APPEAR_WITHIN, interval=0.05,
        on_timeout=lambda: '; still %r' % reader.get(image_id))
    # ... and nothing older lands after it
    until = time.monotonic() + STAYS_FOR
    while time.monotonic() < until:
        assert reader.get(image_id) == final
        assert helpers.raw_sizes(reader, image_id) == (total, total)
        time.sleep(0.05)


def records_index(key, count):
    from glance_progress_store import _memcache
    return _memcache.server_index(key, count)
