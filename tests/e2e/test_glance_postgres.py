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

"""Concurrent uploads into the threads of one glance-api process, with
glance's database on a private PostgreSQL (testbed.PostgreSQL).

The other modules' glance-apis keep their database in a sqlite file,
which takes one writer at a time: uploads running at once in one
process fail there with "database is locked" (HTTP 500), where
deployments run MySQL or PostgreSQL.  The benchmark's concurrency runs
need this set-up; here it is shown to hold.
"""

import os
import re

import pytest

import testbed

from tests.e2e.helpers import check_image
from tests.e2e.helpers import log_text
from tests.e2e.helpers import new_image
from tests.e2e.helpers import read_record
from tests.e2e.helpers import Upload
from tests import helpers
from tests.helpers import MiB

pytestmark = pytest.mark.e2e

UPLOADS = 4
SIZE = 8 * MiB + 4321


@pytest.fixture(scope='module')
def postgres(workdir):
    with testbed.PostgreSQL(os.path.join(workdir, 'postgres')) as server:
        yield server


@pytest.fixture(scope='module')
def glance_threads(ceph, memcached, workdir, postgres):
    """progress_rbd's glance-api: one uWSGI process of UPLOADS threads,
    its database on the private PostgreSQL."""
    with testbed.GlanceAPI(
            os.path.join(workdir, 'glance-postgres'), ceph,
            memcached.address, mode='single', workers=1, threads=UPLOADS,
            database=postgres) as api:
        yield api


def statuses(postgres, image_ids):
    """{image id: status} as glance's own database holds them."""
    out = postgres.sql(
        "SELECT id, status FROM images WHERE id IN (%s)"
        % ", ".join("'%s'" % i for i in image_ids), database='glance')
    return dict(line.split('|') for line in out.splitlines() if line)


def test_concurrent_uploads_in_one_process(glance_threads, postgres, ceph,
                                           memcached, cleanup):
    """UPLOADS uploads are all in flight at once in the one worker (each
    is held after its first MiB until PostgreSQL shows every image
    'saving', which glance writes before it reads a body), then all
    turn active with their data, progress records and no error."""
    assert len(glance_threads.worker_pids()) == 1
    client = glance_threads.client()
    image_ids = [new_image(client, cleanup) for _ in range(UPLOADS)]
    data = [helpers.payload(SIZE, seed=n) for n in range(UPLOADS)]
    valves = [helpers.Valve(d, limit=MiB, max_wait=120) for d in data]
    uploads = [Upload(glance_threads.client(), image_id, d, body=valve)
               for image_id, d, valve in zip(image_ids, data, valves)]
    for upload in uploads:
        upload.start()
    try:
        helpers.wait_for(
            '%d uploads saving at once' % UPLOADS,
            lambda: set(statuses(postgres, image_ids).values()) == {
                'saving'}, 60, interval=0.1,
            on_timeout=lambda: ': %s' % statuses(postgres, image_ids))
    finally:
        for valve in valves:
            valve.open()
    assert [upload.result(timeout=120) for upload in uploads] == [
        None] * UPLOADS
    assert statuses(postgres, image_ids) == dict.fromkeys(
        image_ids, 'active')
    for image_id, d in zip(image_ids, data):
        check_image(glance_threads, ceph, image_id, d)
        record = read_record(memcached, image_id)
        assert (record.state, record.bytes) == ('stored', SIZE)
    log = log_text(glance_threads)
    assert 'database is locked' not in log
    assert not re.search(r'HTTP/1\.[01] 5\d\d', log)
