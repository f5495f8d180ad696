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

"""Discovery through real glance-apis: uploads found without their ids."""

import json
import os
import subprocess
import sys
import threading

import pytest

from tests.e2e.helpers import CHUNK
from tests.e2e.helpers import new_image
from tests import helpers
from tests.helpers import MiB

pytestmark = pytest.mark.e2e


def glance_progress_list(*args):
    done = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), 'glance-progress'),
         'list', '--json', *args], capture_output=True, text=True,
        timeout=60)
    return done.returncode, [json.loads(line)
                             for line in done.stdout.splitlines()]


FOREIGN_KEYS = 200000


@pytest.fixture(scope='module')
def crowded(memcached):
    """The session's memcached, also holding 200,000 keys that are not
    ours (as a Keystone token cache would); they stay, without TTL."""
    from glance_progress_store import _memcache as memcached_mod
    connection = memcached_mod.Connection(memcached.address, 5)
    for start in range(0, FOREIGN_KEYS, 5000):
        connection.set_many({'keystone.token.%d' % n: b'x' * 80
                             for n in range(start, start + 5000)}, 0)
    connection.close()
    return memcached


def test_three_uploads_through_two_glance_apis_all_listed(
        glance_single, glance_multi, crowded, cleanup):
    memcached = crowded
    jobs = []
    for api, kwargs in ((glance_single, {}), (glance_single, {}),
                        (glance_multi, {'backend': 'ceph2'})):
        client = api.client()
        image_id = new_image(client, cleanup)
        data = helpers.payload(40 * MiB, seed=len(jobs))
        body = helpers.Valve(data, limit=1)  # in flight until listed
        thread = threading.Thread(target=client.images.upload, args=(
            image_id, body), kwargs=dict(image_size=len(data), **kwargs),
            daemon=True)
        thread.start()
        jobs.append((image_id, thread, kwargs.get('backend'), body))
    expected = {(i, b) for i, _, b, _ in jobs}

    def all_listed():
        code, listed = glance_progress_list('--servers', memcached.address)
        found = {(v['image_id'], v['backend']) for v in listed
                 if v['state'] == 'uploading' and v['bytes']}
        return expected <= found and (code, listed)

    def a_chunk_more():
        for _, _, _, body in jobs:
            body.let_through(CHUNK)
    try:
        code, _ = helpers.step_until('all three listed with bytes',
                                     all_listed, a_chunk_more, patience=3)
        assert code == 0
    finally:
        for _, thread, _, body in jobs:
            body.open()
        for _, thread, _, _ in jobs:
            thread.join(120)
    # once stored, they leave the list, and --since shows them
    code, listed = glance_progress_list('--servers', memcached.address)
    assert not expected & {(v['image_id'], v['backend']) for v in listed}
    code, listed = glance_progress_list('--servers', memcached.address,
                                        '--since', '5m', '--state', 'stored')
    assert expected <= {(v['image_id'], v['backend']) for v in listed}
