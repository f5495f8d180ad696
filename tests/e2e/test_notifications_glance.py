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

"""Upload notifications from a real glance-api, on a real RabbitMQ.

glance-api (uWSGI, workers forked from a master that loaded the app) is
configured as an operator turns notifications on: ``[oslo_messaging_
notifications] driver = messagingv2`` and a transport_url, nothing of
ours. An oslo.messaging listener on glance's exchange, as Ceilometer's,
receives our events next to glance's own.
"""

import os

import pytest

import testbed

from glance_progress_store.upload import events
from tests.e2e.helpers import chunked
from tests.e2e.helpers import new_image
from tests import helpers
from tests.helpers import MiB
from tests import notifications

pytestmark = pytest.mark.e2e

TOPIC = notifications.unique_topic()
EXCHANGE = 'glance'  # glance's control_exchange (glance.notifier)


@pytest.fixture(scope='module')
def glance_notifying(ceph, memcached, rabbitmq, workdir):
    conf = rabbitmq.glance_conf(topics=[TOPIC])
    conf['glance_store'] = {'progress_notification_interval': 1.0}
    with testbed.GlanceAPI(
            os.path.join(workdir, 'glance-notifying'), ceph,
            memcached.address, mode='single', extra_conf=conf) as api:
        yield api


@pytest.fixture(scope='module')
def listener(rabbitmq):
    with notifications.Listener(rabbitmq.transport_url, TOPIC,
                                EXCHANGE) as listening:
        yield listening


def test_a_large_upload_sends_rising_progress_and_stored(
        glance_notifying, listener, cleanup):
    size = 256 * MiB + 4321
    client = glance_notifying.client()
    image_id = new_image(client, cleanup)
    client.images.upload(image_id, helpers.SlowReader(helpers.payload(size)),
                         image_size=size)
    got = listener.wait_final(image_id)
    kinds = [n['event_type'] for n in got]
    assert kinds == [events.PROGRESS] * (len(got) - 1) + [events.STORED]
    sizes = [n['payload']['bytes'] for n in got]
    assert sizes == sorted(set(sizes)) and len(sizes) >= 10, sizes
    stored = got[-1]
    assert stored['payload']['bytes'] == stored['payload']['total'] == size
    # glance's context reached the store: the project of the request,
    # and glance's request id in the payload and the context
    assert stored['payload']['project_id'] == testbed.glance_api.PROJECT_ID
    assert stored['payload']['request_id'].startswith('req-')
    assert stored['ctxt']['request_id'] == stored['payload']['request_id']
    assert stored['publisher_id'] == 'image.localhost'
    # glance's own notification still arrives, as before
    own = listener.wait('glance\'s image.upload', lambda: [
        n for n in listener.received if n['event_type'] == 'image.upload'
        and n['payload'].get('id') == image_id])
    assert own[0]['payload']['size'] == size


def test_an_upload_of_unknown_size_has_no_total(glance_notifying, listener,
                                                cleanup):
    size = 48 * MiB
    client = glance_notifying.client()
    image_id = new_image(client, cleanup)
    client.images.upload(image_id, chunked(helpers.payload(size)))
    got = listener.wait_final(image_id)
    assert got[-1]['event_type'] == events.STORED
    assert got[-1]['payload']['bytes'] == got[-1]['payload']['total'] == size
    assert all('total' not in n['payload'] for n in got[:-1])
