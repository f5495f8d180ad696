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

"""One memcached of several down for good costs only its own keys.

The other server's records are written as usual, the final flush of an
upload does not wait for the dead server, the dead server is probed at a
bounded rate (not once per batch or per key), and its records are
written once it comes back on the same address.
"""

import time
import uuid

import testbed

from glance_progress_store import _memcache
from glance_progress_store.read import reader as reader_mod
from glance_progress_store import records
from glance_progress_store.upload import publisher
from tests import helpers

TIMEOUT = 0.3


def _keys_on(index, count, servers=2):
    """Image ids whose three keys all live on server ``index``."""
    found = []
    while len(found) < count:
        image_id = str(uuid.uuid4())
        keys = records.keys_for(image_id)
        if all(_memcache.server_index(k, servers) == index
               for k in keys.all()):
            found.append(image_id)
    return found


def _publish(pub, image_id, state, final):
    record = records.ProgressRecord(state, 10, 10, None, 1.0, time.time())
    token = ('', image_id, None)
    pub.submit(token, records.key_values(records.keys_for(image_id),
                                         record), 600, final)
    return token, record


def test_dead_server_holds_back_only_its_keys(live_memcached):
    dead = testbed.Memcached()  # its port, nothing listening yet
    servers = [live_memcached.address, dead.address]
    pub = publisher.Publisher(servers, TIMEOUT)
    alive_ids = _keys_on(0, 20)
    dead_ids = _keys_on(1, 20)

    started = time.monotonic()
    flush_times = []
    for n in range(5):  # five rounds of updates of 40 uploads
        for image_id in alive_ids + dead_ids:
            token, _ = _publish(pub, image_id, 'uploading', False)
        time.sleep(0.2)
    for image_id in alive_ids + dead_ids:
        token, record = _publish(pub, image_id, 'stored', True)
        began = time.monotonic()
        pub.flush(token, TIMEOUT, skip_down=True)
        flush_times.append(time.monotonic() - began)
    elapsed = time.monotonic() - started

    # the final flushes did not wait out the socket timeout each
    assert sum(flush_times) < 2 * TIMEOUT, flush_times
    reader = reader_mod.ProgressReader([live_memcached.address])
    alive_reader = reader_mod.ProgressReader(servers, socket_timeout=0.5)
    for image_id in alive_ids:
        assert reader.get(image_id).state == 'stored'
    # the dead server was probed at a bounded rate: backoff from 0.25 s
    # doubling to 5 s, never once per batch or per upload
    assert pub.stats.server_failures <= 2
    assert pub.stats.probes <= elapsed / 0.25 + 1

    # the dead server comes back: its records are written after it
    # answers a probe (within the 5 s backoff) and the settle time
    with dead:
        def missing():
            return [i for i in dead_ids
                    if getattr(alive_reader.get(i), 'state', None) != 'stored']
        helpers.wait_for('the records of the server back', lambda: (
            not missing()), publisher._RETRY_MAX + publisher.SETTLE + 5,
            interval=0.1, on_timeout=lambda: '; missing %s' % missing())
