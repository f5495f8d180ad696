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

"""The reader API against a real memcached, including values we never wrote."""

import pickle
import uuid

import memcache
import pytest

from glance_progress_store import _memcache
from glance_progress_store.read import reader as reader_mod
from glance_progress_store import records
from glance_progress_store.upload import publisher
from tests import helpers


@pytest.fixture
def client(live_memcached):
    return memcache.Client([live_memcached.address])


def test_missing_record_is_none(reader):
    assert reader.get(str(uuid.uuid4())) is None


def test_pickled_value_is_reported_not_loaded(reader, client, tmp_path):
    image_id = str(uuid.uuid4())
    keys = records.keys_for(image_id)
    tripwire = helpers.Tripwire(tmp_path / 'pwned')
    client.set(keys.status, tripwire)
    with pytest.raises(records.BadRecord, match='pickled'):
        reader.get(image_id)
    assert not tripwire.path.exists()


@pytest.mark.parametrize('value', [
    'garbage', '{"state": "uploading"}', '[1, 2]',
    '{"state":"bogus","bytes":1,"total":null,"backend":null,'
    '"started_at":1,"updated_at":1,"reason":null}',
    'x' * 100000,
])
def test_foreign_status_values_are_bad_records(reader, client, value):
    image_id = str(uuid.uuid4())
    client.set(records.keys_for(image_id).status, value)
    with pytest.raises(records.BadRecord):
        reader.get(image_id)


@pytest.mark.parametrize('value', ['{"state": "uploading"}', 7])
def test_python_memcached_text_and_integer_flags_are_not_ours(reader, client,
                                                              value):
    # flags 16 (str) and 2 (int): never written by any release of ours
    image_id = str(uuid.uuid4())
    client.set(records.keys_for(image_id).status, value)
    with pytest.raises(records.BadRecord, match='memcached flags'):
        reader.get(image_id)


def test_foreign_size_value_is_bad_record(reader, client):
    image_id = str(uuid.uuid4())
    keys = records.keys_for(image_id)
    record = records.ProgressRecord('uploading', 1, None, None, 1.0, 1.0)
    client.set_multi(records.key_values(keys, record))
    client.set(keys.uploading, b'lots')
    with pytest.raises(records.BadRecord, match='decimal'):
        reader.get(image_id)


def test_record_round_trip_and_plain_clients_can_read(reader, client):
    image_id = str(uuid.uuid4())
    keys = records.keys_for(image_id)
    record = records.ProgressRecord('uploading', 5, 10, None, 1.5, 2.5)
    client.set_multi(records.key_values(keys, record))
    assert reader.get(image_id) == record
    # flags 0: python-memcached gives the ASCII decimal bytes back as is
    assert client.get(keys.total) == b'10'
    assert client.get(keys.uploading) == b'5'


def test_unreachable_memcached_is_reported(live_memcached):
    import testbed
    nobody = '127.0.0.1:%d' % testbed.free_port()
    with pytest.raises(_memcache.ServerUnavailable, match=nobody):
        reader_mod.ProgressReader([nobody], socket_timeout=0.5
                                  ).check_servers()
    reader_mod.ProgressReader([live_memcached.address]).check_servers()


def test_pickled_values_not_written_by_store(reader, live_memcached):
    image_id = str(uuid.uuid4())
    pub = publisher.get_publisher([live_memcached.address], 0.5)
    record = records.ProgressRecord('uploading', 3, None, 'b', 1.0, 2.0)
    token = ('', image_id, 'b')
    pub.submit(token, records.key_values(
        records.keys_for(image_id, 'b'), record), 60)
    assert pub.flush(token, 5)
    raw = _memcache.Connection(live_memcached.address, 1.0)
    values = raw.get_many(records.keys_for(image_id, 'b').all())
    assert {v.flags for v in values.values()} == {0}
    assert not any(v.data.startswith(pickle.PROTO) for v in values.values())
