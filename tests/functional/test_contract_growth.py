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

"""A newer release's records during a rolling upgrade, read by this one.

A writer may add fields (records' compatibility rule): the CLI, the
exporter's discovery and the paste filter's reader must show such a
record as it is, not as ``bad``. The values are written raw, as
another release of the writer would, through python-memcached with
flags 0.
"""

import json
import time
import uuid

import memcache

from glance_progress_store.read import discovery
from glance_progress_store.read import reader
from glance_progress_store.read import sources
from glance_progress_store import records
from tests.unit import test_layers


def _write_newer_release(address, prefix, image_id):
    """A record and an index as a newer writer might write them."""
    now = time.time()
    status = {'state': 'uploading', 'bytes': 5, 'total': 10,
              'backend': None, 'started_at': now - 10, 'updated_at': now,
              'reason': None,
              # what a newer release could add without a version change
              'host': 'glance-9', 'pid': 4242, 'chunk_size': 8388608}
    keys = records.keys_for(image_id, None, prefix)
    index_key = records.index_key(prefix, uuid.uuid4().hex)
    client = memcache.Client([address])
    try:
        assert client.set_multi({
            keys.total: b'10', keys.uploading: b'5',
            keys.status: json.dumps(status).encode(),
            index_key: json.dumps({
                'host': 'glance-9', 'pid': 4242, 'updated_at': now,
                'uploads': [[image_id, None, None, 'a fourth item']],
                'region': 'added'}).encode(),
            records.registry_key(prefix): records.registry_value(
                {index_key: now}),
        }, time=600) == []
    finally:
        client.disconnect_all()


def _cli(*args, blocked=()):
    return test_layers.run_without(
        set(blocked) or {'nothing-blocked'},
        'from glance_progress_store.cmd import cli; '
        'sys.exit(cli.main(sys.argv[1:]))', *args)


def test_show_and_list_read_a_record_with_added_fields(live_memcached):
    prefix = 'grow-%s:' % uuid.uuid4().hex[:6]
    image_id = str(uuid.uuid4())
    _write_newer_release(live_memcached.address, prefix, image_id)
    where = ('--servers', live_memcached.address, '--prefix', prefix)

    shown = _cli('show', image_id, '--json', *where)
    assert shown.returncode == 0, shown.stderr  # was 3: "bad"
    view = json.loads(shown.stdout)
    assert (view['state'], view['bytes'], view['total'], view['error']) == (
        'uploading', 5, 10, None)

    listed = _cli('list', '--json', *where)
    assert listed.returncode == 0, listed.stderr  # the entry was dropped
    [found] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (found['image_id'], found['state']) == (image_id, 'uploading')


def test_discovery_and_the_reader_read_it(live_memcached):
    # discovery is what the exporter refreshes from; the reader's get is
    # what the paste filter serves (its e2e test is in test_progress_api)
    prefix = 'grow-%s:' % uuid.uuid4().hex[:6]
    image_id = str(uuid.uuid4())
    _write_newer_release(live_memcached.address, prefix, image_id)
    settings = sources.Settings(
        [sources.Source((live_memcached.address,), prefix)], {})
    [view] = discovery.discover(settings).views
    assert (view.image_id, view.state, view.error) == (
        image_id, 'uploading', None)
    get = reader.ProgressReader([live_memcached.address], prefix)
    try:
        assert get.get(image_id).state == 'uploading'
    finally:
        get.close()


def test_read_commands_show_real_records_without_server_side_modules(
        live_memcached):
    # an operator's bastion host: no glance_store, Ceph bindings, WebOb
    # or prometheus_client; show, list and watch read what the store wrote
    prefix = 'bare-%s:' % uuid.uuid4().hex[:6]
    image_id = str(uuid.uuid4())
    _write_newer_release(live_memcached.address, prefix, image_id)
    where = ('--servers', live_memcached.address, '--prefix', prefix)
    lacks = test_layers.READ_HOST_LACKS
    shown = _cli('show', image_id, *where, blocked=lacks)
    assert shown.returncode == 0, shown.stderr
    assert 'uploading' in shown.stdout and '50.0%' in shown.stdout
    listed = _cli('list', *where, blocked=lacks)
    assert listed.returncode == 0, listed.stderr
    assert image_id in listed.stdout
    watched = _cli('watch', image_id, '--timeout', '1', *where,
                   blocked=lacks)
    assert watched.returncode == 5, watched.stderr  # still uploading
    assert 'uploading 5/10' in watched.stdout
    assert 'Traceback' not in shown.stderr + listed.stderr + watched.stderr
