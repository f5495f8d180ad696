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

"""Image ids that memcached cannot take as keys, on the real Ceph.

Glance's ids are UUIDs, but glance_store's API takes any string, and a
memcached key cannot hold whitespace, control or non-ASCII characters nor
be longer than 250 bytes. For such ids the store must upload exactly as
for any other id, and the progress keys use ``sha256-<digest>`` instead
of the id (``records.keys_for``), so that writer, reader and CLI derive
the same key.

Which ids can reach the store at all is Ceph's business, tested first:
librbd names an image with any non-empty C string, so it takes spaces,
control characters, non-ASCII text and names of any length, and also '/'
and '@'; it refuses an empty name and cuts a name at a NUL byte (another
image!). '/' and '@' are excluded below although librbd takes them: the
``rbd`` CLI reads ``POOL/[NAMESPACE/]IMAGE[@SNAP]``, so an operator could
not address such an image (nor remove it when an upload is left behind),
and both are plain printable ASCII for memcached anyway.
"""

import json
import subprocess
import uuid

import pytest

from glance_store import location

from glance_progress_store.cmd import cli
from glance_progress_store.read import reader as reader_mod
from glance_progress_store.read import states
from glance_progress_store import records
from tests import helpers
from tests.helpers import MiB

import testbed  # on sys.path through conftest

PREFIX = 'region-1:'


def hostile_ids():
    """(test id, image id): each one a key memcached would refuse."""
    tail = str(uuid.uuid4())
    return [
        ('space', 'my image ' + tail),
        ('tab-newline', 'tab\there\nnewline ' + tail),
        ('control-chars', 'ctl\x01\x1b[31m\x7f' + tail),
        ('non-ascii', 'caf\u00e9-\u65e5\u672c\u8a9e-\U0001f600-' + tail),
        ('long-ascii', 'x' * 300 + tail),
        # fits alone, not after the prefix and the longest suffix
        ('long-with-prefix', 'y' * (250 - len('_uploading_size') -
                                    len(PREFIX) + 1)),
        ('long-non-ascii', '\u00e9' * 130 + tail),  # 260 bytes of UTF-8
    ]


HOSTILE = hostile_ids()


def _rbd():
    import rados
    import rbd
    return rados, rbd


def rbd_names(ceph, pool):
    """The image names as librbd gives them (``rbd ls`` splits on spaces)."""
    rados, rbd = _rbd()
    with rados.Rados(conffile=ceph.conf_path) as cluster:
        with cluster.open_ioctx(pool) as ioctx:
            return rbd.RBD().list(ioctx)


# --- What Ceph accepts -------------------------------------------------------

@pytest.mark.parametrize('name, listed_as, cli_addressable', [
    ('with space', 'with space', True),
    ('ctl\x01\x7f', 'ctl\x01\x7f', True),
    ('caf\u00e9-\u65e5\u672c', 'caf\u00e9-\u65e5\u672c', True),
    ('z' * 1000, 'z' * 1000, True),
    ('a/b', 'a/b', False),  # the CLI reads pool/namespace/image
    ('a@b', 'a@b', False),  # the CLI reads image@snapshot
    ('nul\x00cut', 'nul', False),  # a C string: cut at the NUL
], ids=['space', 'control', 'non-ascii', '1000-bytes', 'slash', 'at', 'nul'])
def test_which_names_rbd_accepts(ceph, cleanup, name, listed_as,
                                 cli_addressable):
    rados, rbd = _rbd()
    tag = uuid.uuid4().hex[:8]
    name, listed_as = name + tag, listed_as + ('' if '\x00' in name else tag)
    cleanup.append(listed_as)
    with rados.Rados(conffile=ceph.conf_path) as cluster:
        with cluster.open_ioctx(helpers.POOL) as ioctx:
            rbd.RBD().create(ioctx, name, MiB)
    assert listed_as in rbd_names(ceph, helpers.POOL)
    if '\x00' in name:
        return  # no command line can even carry it
    info = subprocess.run(
        ['rbd', '-c', ceph.conf_path, 'info', '--format', 'json',
         '%s/%s' % (helpers.POOL, name)],
        capture_output=True, timeout=60, env=testbed.clean_env())
    assert (info.returncode == 0 and json.loads(info.stdout)['name'] ==
            name) == cli_addressable, info.stderr


def test_rbd_refuses_an_empty_name(ceph):
    rados, rbd = _rbd()
    with rados.Rados(conffile=ceph.conf_path) as cluster:
        with cluster.open_ioctx(helpers.POOL) as ioctx:
            with pytest.raises(rbd.InvalidArgument):
                rbd.RBD().create(ioctx, '', MiB)


# --- Keys ------------------------------------------------------------------

@pytest.mark.parametrize('image_id', [i for _, i in HOSTILE],
                         ids=[t for t, _ in HOSTILE])
@pytest.mark.parametrize('backend', [None, 'ceph-\u00e9'])
def test_keys_are_safe_and_deterministic(image_id, backend):
    import hashlib
    keys = records.keys_for(image_id, backend, PREFIX)
    assert keys == records.keys_for(image_id, backend, PREFIX)
    name = image_id if backend is None else '%s@%s' % (image_id, backend)
    base = PREFIX + 'sha256-' + hashlib.sha256(name.encode()).hexdigest()
    assert keys.all() == (base + '_total_size', base + '_uploading_size',
                          base + '_upload_status')
    for key in keys.all():
        assert len(key.encode()) <= 250
        assert all(33 <= ord(ch) <= 126 for ch in key)
    # other ids, other keys; the same id without a prefix is not shared
    assert keys != records.keys_for(image_id + ' ', backend, PREFIX)
    assert keys.status != records.keys_for(image_id, backend).status


def test_a_uuid_keeps_its_plain_key():
    image_id = str(uuid.uuid4())
    assert records.keys_for(image_id, None, PREFIX).status == (
        PREFIX + image_id + '_upload_status')
    assert records.keys_for('abc').uploading == 'abc_uploading_size'
    assert records.keys_for('abc', 'ceph2').status == 'abc@ceph2_upload_status'


# --- Uploads through the store ---------------------------------------------

@pytest.mark.parametrize('image_id', [i for _, i in HOSTILE],
                         ids=[t for t, _ in HOSTILE])
def test_upload_with_a_hostile_id(single_store, ceph, live_memcached,
                                  cleanup, capsys, image_id):
    store = single_store(progress_key_prefix=PREFIX)
    data = helpers.payload(3 * MiB + 17, seed=len(image_id))
    cleanup.append(image_id)
    uri, size, checksum, multihash, _ = helpers.add_single(
        store, image_id, helpers.SlowReader(data), len(data))

    # the upload is unaffected: same data, sizes and hashes
    assert (size, checksum, multihash) == (len(data),) + helpers.digests(
        data)
    assert image_id in rbd_names(ceph, helpers.POOL)
    stored, snaps = helpers.read_rbd(ceph, helpers.POOL, image_id, 'snap')
    assert stored == data and snaps == {'snap': True}
    # and glance can read it back through the location it was given
    loc = location.get_location_from_uri(uri, conf=store.test_conf)
    assert loc.store_location.image == image_id
    chunks, length = store.get(loc)
    assert (length, b''.join(chunks)) == (len(data), data)

    # the reader finds the record under the same id
    reader = reader_mod.ProgressReader([live_memcached.address], PREFIX)
    record = helpers.wait_record(reader, image_id)
    assert (record.state, record.bytes, record.total) == (
        'stored', len(data), len(data))
    assert helpers.raw_sizes(reader, image_id) == (len(data), len(data))
    # ... under the hashed keys, which hold what the store wrote
    import memcache
    keys = records.keys_for(image_id, None, PREFIX)
    raw = memcache.Client([live_memcached.address]).get_multi(
        list(keys.all()))
    assert records.ProgressRecord.from_json(raw[keys.status]) == record
    assert (raw[keys.total], raw[keys.uploading]) == (
        b'%d' % len(data), b'%d' % len(data))

    # and so does the CLI
    code = cli.main(['show', '--json', image_id, '--servers',
                     live_memcached.address, '--prefix', PREFIX])
    [view] = [json.loads(line) for line in
              capsys.readouterr().out.splitlines()]
    assert code == 0
    assert (view['image_id'], view['state'], view['bytes']) == (
        image_id, 'stored', len(data))


def test_failed_upload_with_a_hostile_id(single_store, ceph, live_memcached,
                                         cleanup, capsys):
    """A failure is recorded under the same keys and cleans up too."""
    from glance_store import exceptions
    image_id = 'broken upload\n' + str(uuid.uuid4())
    cleanup.append(image_id)
    store = single_store(progress_key_prefix=PREFIX)
    data = helpers.payload(2 * MiB)
    with pytest.raises(exceptions.Invalid):
        helpers.add_single(store, image_id, helpers.SlowReader(data),
                           len(data) + 1)
    assert image_id not in rbd_names(ceph, helpers.POOL)
    reader = reader_mod.ProgressReader([live_memcached.address], PREFIX)
    record = helpers.wait_record(reader, image_id, state='failed')
    assert (record.state, record.reason) == ('failed', 'size_mismatch')
    code = cli.main(['show', image_id, '--servers', live_memcached.address,
                     '--prefix', PREFIX])
    out = capsys.readouterr().out
    assert code == states.EXIT_FAILED
    assert out.splitlines()[0] == image_id.split('\n')[0]
    assert 'state:    failed' in out and 'size_mismatch' in out
