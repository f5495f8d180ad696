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

"""progress_rbd with enabled_backends = NAME:progress_rbd."""

import concurrent.futures

from glance_progress_store import records
from tests import helpers
from tests.helpers import MiB


def test_each_backend_stores_in_its_pool(multi_store, ceph, reader,
                                         image_id):
    stores = multi_store()
    assert set(stores) == {'ceph1', 'ceph2'}
    data = helpers.payload(3 * MiB + 1)
    result = helpers.add_multi('ceph2', image_id, helpers.SlowReader(data),
                               len(data))
    metadata = helpers.check_stored(ceph, result, image_id, data,
                                    pool=helpers.POOL2)
    assert metadata == {'store': 'ceph2'}
    record = helpers.wait_record(reader, image_id, 'ceph2')
    assert (record.backend, record.bytes) == ('ceph2', len(data))
    plain = reader.get(image_id)
    assert plain == record  # one backend: the plain keys say the same
    assert not helpers.rbd_exists(ceph, helpers.POOL, image_id)


def test_same_image_into_two_backends_at_once(multi_store, ceph, reader,
                                              image_id):
    # copy-image / import to several stores: each backend's progress stays
    # readable on its own.
    multi_store()
    sizes = {'ceph1': 7 * MiB + 3, 'ceph2': 4 * MiB}
    data = {b: helpers.payload(s, seed=len(b) + s) for b, s in sizes.items()}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {b: pool.submit(helpers.add_multi, b, image_id,
                                  helpers.SlowReader(d, pause=0.005), 0)
                   for b, d in data.items()}
        results = {b: f.result() for b, f in futures.items()}
    for backend, pool_name in helpers.BACKENDS.items():
        helpers.check_stored(ceph, results[backend], image_id, data[backend],
                             pool=pool_name)
        record = helpers.wait_record(reader, image_id, backend)
        assert (record.state, record.bytes, record.total, record.backend) == (
            'stored', sizes[backend], sizes[backend], backend)
    assert reader.get(image_id).backend in sizes


def test_backend_keys_are_documented_form(multi_store, live_memcached,
                                          reader, image_id):
    import memcache
    multi_store()
    helpers.add_multi('ceph1', image_id,
                      helpers.SlowReader(helpers.payload(MiB)), MiB)
    client = memcache.Client([live_memcached.address])
    keys = records.keys_for(image_id, 'ceph1')
    assert keys.uploading == '%s@ceph1_uploading_size' % image_id
    helpers.wait_record(reader, image_id, 'ceph1')
    # flags 0: any client gets the ASCII decimal bytes
    assert client.get(keys.uploading) == b'%d' % MiB
    assert client.get(keys.total) == b'%d' % MiB
    assert client.get('%s_uploading_size' % image_id) == b'%d' % MiB
