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

"""A failed image create never removes an image this upload did not create.

The RBD image of that name exists already (another tool made it, or an
earlier upload of the id) and the OSD stops answering, so that the create
times out instead of saying ``ImageExists``: the store cannot know whose
image it is, so it must leave it alone, even once the OSD answers again
while it is still cleaning up.
"""

import threading

import pytest

from glance_store import exceptions

from tests import helpers

MiB = helpers.MiB
# Short Ceph timeouts for the store (rados_osd_op_timeout and
# rados_mon_op_timeout), and an OSD pause well past them but short of the
# ~16 s after which a one-OSD Ceph 16 cluster may keep PGs laggy.
CEPH_TIMEOUT = 3
OSD_PAUSE = 7.0


def test_create_timeout_leaves_existing_image(single_store, ceph, reader,
                                              image_id):
    ceph.rbd('create', '--size', '4', '%s/%s' % (helpers.POOL, image_id))
    store = single_store(rados_connect_timeout=CEPH_TIMEOUT)
    data = helpers.payload(MiB)
    ceph.pause_osd()
    resume = threading.Timer(OSD_PAUSE, ceph.resume_osd)
    resume.start()
    try:
        with pytest.raises(exceptions.BackendException,
                           match='did not answer in time'):
            helpers.add_single(store, image_id, helpers.SlowReader(data),
                               len(data))
    finally:
        resume.join()
        ceph.wait_pool_io(helpers.POOL)
    # the failed upload is recorded, the image that was there is not touched
    record = helpers.wait_record(reader, image_id, state='failed')
    assert (record.state, record.reason) == ('failed', 'storage_timeout')
    assert helpers.rbd_exists(ceph, helpers.POOL, image_id)
    assert ceph.rbd('info', '%s/%s' % (helpers.POOL, image_id)).count(
        'size 4 MiB') == 1
