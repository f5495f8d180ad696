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

"""End to end: glanceclient -> glance-api (uWSGI) -> progress_rbd -> Ceph.

Every upload is watched through the package's reader (what the CLI uses)
while it runs; each test checks what the user sees (status, checksum,
os_hash_value, download, direct_url), what Ceph holds and what the
progress record says.
"""

import os
import uuid

from glanceclient import exc as glance_exc
import pytest

from glance_progress_store.read import reader as reader_mod
from tests.e2e.helpers import check_image
from tests.e2e.helpers import chunked
from tests.e2e.helpers import new_image
from tests.e2e.helpers import wait_image
from tests import helpers
from tests.helpers import MiB

pytestmark = pytest.mark.e2e


def check_progress(watcher, size, backend=None):
    assert watcher.wait_for('stored'), watcher.seen
    watcher.stop()
    seen = watcher.seen
    assert [r.bytes for r in seen] == sorted(r.bytes for r in seen), seen
    final = seen[-1]
    assert (final.state, final.bytes, final.total, final.backend) == (
        'stored', size, size, backend)
    return seen


@pytest.mark.parametrize('known_size', [True, False],
                         ids=['image-upload', 'chunked-no-size'])
def test_upload_single_store(glance_single, ceph, memcached, cleanup,
                             known_size):
    client = glance_single.client()
    data = helpers.payload(40 * MiB + 12345, seed=known_size)
    image_id = new_image(client, cleanup)
    watcher = helpers.RecordWatcher([memcached.address], image_id)
    watcher.start()
    if known_size:
        client.images.upload(image_id, helpers.SlowReader(data),
                             image_size=len(data))
    else:
        client.images.upload(image_id, chunked(data))
    seen = check_progress(watcher, len(data))
    assert any(r.state == 'uploading' for r in seen)
    check_image(glance_single, ceph, image_id, data)


def test_glance_cli_image_create_file(glance_single, ceph, memcached,
                                      cleanup, tmp_path):
    """`glance image-create --file` exactly as an operator types it."""
    import re
    import subprocess
    import sys
    data = helpers.payload(9 * MiB + 1, seed=7)
    path = tmp_path / 'disk.raw'
    path.write_bytes(data)
    glance = os.path.join(os.path.dirname(sys.executable), 'glance')
    env = dict(os.environ, **glance_single.cli_env())
    out = subprocess.run(
        [glance, '--os-image-api-version', '2', 'image-create',
         '--name', 'cli', '--disk-format', 'raw', '--container-format',
         'bare', '--file', str(path), '--progress'],
        env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    # glance prints a property table: | id | <uuid> |
    image_id = re.search(r'^\|\s*id\s*\|\s*(\S+)\s*\|', out.stdout,
                         re.MULTILINE).group(1)
    cleanup.append(image_id)
    check_image(glance_single, ceph, image_id, data)
    record = helpers.wait_record(
        reader_mod.ProgressReader([memcached.address]), image_id)
    assert (record.state, record.bytes, record.total) == (
        'stored', len(data), len(data))


def test_upload_to_second_backend(glance_multi, ceph, memcached, cleanup):
    client = glance_multi.client()
    data = helpers.payload(20 * MiB + 5, seed=2)
    image_id = new_image(client, cleanup)
    watcher = helpers.RecordWatcher([memcached.address], image_id,
                                    'ceph2')
    watcher.start()
    client.images.upload(image_id, helpers.SlowReader(data),
                         image_size=len(data), backend='ceph2')
    check_progress(watcher, len(data), 'ceph2')
    image = check_image(glance_multi, ceph, image_id, data,
                        pool=helpers.POOL2)
    assert image['stores'] == 'ceph2'
    assert not helpers.rbd_exists(ceph, helpers.POOL, image_id)


def test_glance_direct_import(glance_multi, ceph, memcached, cleanup):
    client = glance_multi.client()
    data = helpers.payload(17 * MiB, seed=3)
    image_id = new_image(client, cleanup)
    client.images.stage(image_id, helpers.SlowReader(data))
    client.images.image_import(image_id, method='glance-direct',
                               backend='ceph1')
    wait_image(client, image_id, lambda i: i['status'] == 'active')
    check_image(glance_multi, ceph, image_id, data)
    record = helpers.wait_record(
        reader_mod.ProgressReader([memcached.address]), image_id, 'ceph1')
    assert (record.state, record.bytes) == ('stored', len(data))


def test_web_download_then_copy_image(glance_multi, ceph, memcached,
                                      web_server, cleanup):
    client = glance_multi.client()
    reader = reader_mod.ProgressReader([memcached.address])
    data = helpers.payload(26 * MiB + 99, seed=4)
    name = 'disk-%s.raw' % uuid.uuid4().hex[:8]
    with open(os.path.join(web_server.root, name), 'wb') as f:
        f.write(data)
    image_id = new_image(client, cleanup)
    client.images.image_import(image_id, method='web-download',
                               uri='%s/%s' % (web_server.url, name),
                               backend='ceph1')
    wait_image(client, image_id, lambda i: i['status'] == 'active')
    check_image(glance_multi, ceph, image_id, data)
    first = helpers.wait_record(reader, image_id, 'ceph1')
    assert (first.state, first.bytes) == ('stored', len(data))

    # copy-image into the second backend: its progress is kept apart.
    client.images.image_import(image_id, method='copy-image',
                               stores=['ceph2'])
    wait_image(client, image_id, lambda i: set(
        i.get('stores', '').split(',')) == {'ceph1', 'ceph2'})
    copy = helpers.wait_record(reader, image_id, 'ceph2')
    assert (copy.state, copy.bytes, copy.backend) == (
        'stored', len(data), 'ceph2')
    assert reader.get(image_id, 'ceph1') == first
    assert helpers.read_rbd(ceph, helpers.POOL2, image_id)[0] == data


def test_delete_removes_rbd_images(glance_multi, ceph, cleanup):
    client = glance_multi.client()
    data = helpers.payload(3 * MiB, seed=5)
    image_id = new_image(client, cleanup)
    client.images.upload(image_id, helpers.SlowReader(data),
                         image_size=len(data), backend='ceph2')
    assert helpers.rbd_exists(ceph, helpers.POOL2, image_id)
    client.images.delete(image_id)
    assert not helpers.rbd_exists(ceph, helpers.POOL2, image_id)


def test_failed_upload_leaves_no_image_and_a_failed_record(
        glance_single, ceph, memcached, cleanup):
    # A chunked body larger than glance's image_size_cap: glance's reader
    # raises mid-upload, the store must clean up and record the failure.
    from tests.e2e.conftest import IMAGE_SIZE_CAP
    client = glance_single.client()
    data = helpers.payload(IMAGE_SIZE_CAP + 16 * MiB, seed=6)
    image_id = new_image(client, cleanup)
    with pytest.raises(glance_exc.HTTPOverLimit):
        client.images.upload(image_id, chunked(data))
    assert client.images.get(image_id)['status'] != 'active'
    assert not helpers.rbd_exists(ceph, helpers.POOL, image_id)
    record = helpers.wait_record(
        reader_mod.ProgressReader([memcached.address]), image_id,
        state='failed')
    assert (record.state, record.reason) == ('failed', 'source_error')
    assert record.bytes <= IMAGE_SIZE_CAP
