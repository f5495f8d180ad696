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

"""Upload notifications through a real RabbitMQ, from uploads into Ceph.

The store is loaded as glance loads it and sends with glance's settings
(``[oslo_messaging_notifications]`` driver messagingv2, the session's
private RabbitMQ, glance's default ``retry = -1``); an oslo.messaging
notification listener, as Ceilometer's, receives the events. Then the
broker is stopped, and frozen (SIGSTOP): uploads take the same time as
without notifications, their memcached records are right, the sender's
queue stays bounded, and the events arrive once the broker is back.
"""

import threading
import time
import uuid

import glance_store
from oslo_context import context as oslo_context
import pytest

from glance_progress_store import records
from glance_progress_store.upload import events
from glance_progress_store.upload import notifier
from tests import helpers
from tests.helpers import MiB
from tests import notifications

TOPIC = notifications.unique_topic()
# oslo.messaging's default control_exchange: the test store has no
# glance to set it to "glance" (the e2e tests' glance-api does).
EXCHANGE = 'openstack'


@pytest.fixture(scope='module')
def listener(rabbitmq):
    with notifications.Listener(rabbitmq.transport_url, TOPIC,
                                EXCHANGE) as listening:
        yield listening


@pytest.fixture
def notifying_store(single_store, live_rabbitmq, listener):
    """make(**options) -> a store whose uploads notify to TOPIC."""
    def make(**options):
        store = single_store(**options)
        notifications.send_to(store.test_conf, live_rabbitmq.transport_url,
                              TOPIC)
        return store
    return make


def _context():
    return oslo_context.RequestContext(
        project_id='p-functional', user_id='u-functional',
        auth_token='not-in-notifications')


def _add(store, image_id, source, size, context=None):
    return glance_store.add_to_backend_with_multihash(
        store.test_conf, image_id, source, size, 'sha512', scheme='rbd',
        context=context)


@pytest.mark.parametrize('known', [True, False], ids=['size', 'chunked'])
def test_an_upload_sends_rising_progress_then_stored(
        notifying_store, listener, reader, image_id, known):
    size = 40 * MiB
    data = helpers.payload(size)
    store = notifying_store(progress_notification_interval=1.0)
    context = _context()
    # about 2 s: a time step or two for the upload of unknown size
    source = helpers.SlowReader(data, pause=0.05, read_size=MiB)
    result = _add(store, image_id, source, size if known else 0, context)
    assert result[1] == size
    got = listener.wait_final(image_id)
    kinds = [n['event_type'] for n in got]
    assert kinds == [events.PROGRESS] * (len(got) - 1) + [events.STORED]
    progress = [n['payload'] for n in got[:-1]]
    sizes = [p['bytes'] for p in progress]
    assert sizes == sorted(set(sizes)) and sizes[0] == 0
    if known:  # 0 %, then every 10 % step
        assert len(progress) >= 9, sizes
        assert all(p['total'] == size for p in progress)
        assert [p['percent'] for p in progress] == sorted(
            p['percent'] for p in progress)
    else:  # the first, then one a second: no total, never a fake one
        assert len(progress) >= 2, sizes
        assert all('total' not in p and 'percent' not in p
                   for p in progress)
    stored = got[-1]
    assert stored['payload']['bytes'] == stored['payload']['total'] == size
    assert stored['payload']['state'] == records.STORED
    assert stored['payload']['payload_version'] == 1
    assert stored['payload']['request_id'] == context.request_id
    assert stored['payload']['project_id'] == 'p-functional'
    assert stored['publisher_id'] == notifier.DEFAULT_PUBLISHER_ID
    assert stored['ctxt']['request_id'] == context.request_id
    assert stored['ctxt'].get('auth_token') is None
    record = helpers.wait_record(reader, image_id)
    assert (record.bytes, record.total) == (size, size)


def test_a_failed_upload_says_why(notifying_store, listener, reader,
                                  image_id):
    data = helpers.payload(8 * MiB)
    store = notifying_store()
    with pytest.raises(IOError):
        _add(store, image_id, helpers.SlowReader(data, fail_at=3 * MiB),
             len(data))
    got = listener.wait_final(image_id)
    failed = got[-1]
    assert failed['event_type'] == events.FAILED
    assert failed['priority'] == 'error'
    assert failed['payload']['state'] == records.FAILED
    assert failed['payload']['reason'] == records.SOURCE_ERROR
    assert helpers.wait_record(reader, image_id, state='failed').reason == (
        records.SOURCE_ERROR)


def test_a_stall_then_its_resumption(notifying_store, listener, image_id):
    data = helpers.payload(8 * MiB)
    store = notifying_store(progress_notification_stall_after=1.0)
    valve = helpers.Valve(data, limit=3 * MiB)
    done = []
    upload = threading.Thread(target=lambda: done.append(
        _add(store, image_id, valve, len(data))))
    upload.start()
    try:
        stalled = listener.wait('stalled event', lambda: [
            n for n in listener.of(image_id)
            if n['event_type'] == events.STALLED])
    finally:
        valve.open()
        upload.join(60)
    assert stalled[0]['priority'] == 'warn'
    assert stalled[0]['payload']['state'] == 'stalled'
    # what Ceph acknowledged: the writes still in flight are not counted
    assert stalled[0]['payload']['bytes'] <= 3 * MiB
    got = listener.wait_final(image_id)
    kinds = [n['event_type'] for n in got if n['event_type'] !=
             events.PROGRESS]
    assert kinds == [events.STALLED, events.RESUMED, events.STORED]
    assert done and done[0][1] == len(data)


def _timed_add(store, image_id, data):
    started = time.monotonic()
    _add(store, image_id, helpers.SlowReader(data), len(data))
    return time.monotonic() - started


def _baseline(make, image_id, data):
    """An upload's time with notifications off, on the same store."""
    store = make(progress_notifications=False)
    return _timed_add(store, image_id, data)


@pytest.mark.parametrize('fault', ['stopped', 'frozen'])
def test_a_broker_away_costs_uploads_nothing(
        notifying_store, listener, live_rabbitmq, reader, cleanup,
        monkeypatch, fault):
    """Uploads with the broker stopped or frozen take the time they take
    without notifications; the sender's queue stays within its bound,
    keeping every upload's final event, which arrives once the broker is
    back: the sender is connected, and glance's default retry = -1 makes
    it wait for the broker."""
    monkeypatch.setattr(notifier, 'MAX_QUEUED', 20)
    data = helpers.payload(24 * MiB)
    images = [str(uuid.uuid4()) for _ in range(5)]
    cleanup.extend(images)
    baseline = _baseline(notifying_store, images[0], data)
    # 1 % steps: about 25 progress events an upload, 75 for a queue of 20
    store = notifying_store(progress_notifications=True,
                            progress_notification_percent_step=1)
    _timed_add(store, images[1], data)  # the sender connects
    assert listener.wait_final(images[1])[-1]['event_type'] == events.STORED
    if fault == 'stopped':
        live_rabbitmq.stop()
    else:
        live_rabbitmq.freeze()
    timings = [_timed_add(store, image, data) for image in images[2:]]
    sender = notifier.get_sender(store.test_conf)
    assert sender.queued() <= notifier.MAX_QUEUED
    assert sender.stats.dropped > 0 and sender.stats.lost == 0
    assert max(timings) < 2 * baseline + 2.0, (baseline, timings)
    for image in images[2:]:
        record = helpers.wait_record(reader, image)
        assert record.bytes == len(data)
    if fault == 'stopped':
        live_rabbitmq.start()
    else:
        live_rabbitmq.thaw()
    for image in images[2:]:  # reconnecting takes up to 30 s (backoff)
        got = listener.wait_final(image, timeout=90)
        assert got[-1]['event_type'] == events.STORED
        assert got[-1]['payload']['bytes'] == len(data)
