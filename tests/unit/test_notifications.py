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

"""Upload notifications without a broker: oslo.messaging's in-memory
``test`` driver (it keeps what a notifier sends in a list), the throttle,
the payload, the queue's bound and glance's ``disabled_notifications``.

The broker's faults (stopped, frozen) are tests/functional's
test_notifications.py, with a real RabbitMQ.
"""

import datetime
import fnmatch
import logging
import os
import threading
import time

from glance import notifier as glance_notifier
from oslo_config import cfg
from oslo_context import context
from oslo_messaging.notify import _impl_test
import pytest

from glance_progress_store import options
from glance_progress_store.read import states
from glance_progress_store import records
from glance_progress_store.upload import config
from glance_progress_store.upload import events
from glance_progress_store.upload import notifier
from glance_progress_store.upload import progress

MiB = 2 ** 20


def _conf(driver=('test',), store=None, **default):
    """glance's CONF as glance registers it: its notifier options, our
    store options, oslo.messaging's in-memory transport."""
    conf = cfg.ConfigOpts()
    conf.register_opts(glance_notifier.notifier_opts)
    conf.register_opts(options.OPTIONS, group='glance_store')
    conf([], project='gps-unit', default_config_files=[])
    notifier._settings(conf)  # registers [oslo_messaging_notifications]
    conf.set_override('transport_url', 'fake://',
                      group='oslo_messaging_notifications')
    conf.set_override('driver', list(driver),
                      group='oslo_messaging_notifications')
    conf.set_override('progress_enabled', False, group='glance_store')
    for name, value in (store or {}).items():
        conf.set_override(name, value, group='glance_store')
    for name, value in default.items():
        conf.set_override(name, value)
    return conf


def _upload(conf, total, image_id='img-1', context=None, backend=None):
    progress_config = config.ProgressConfig(conf.glance_store, 'x')
    return progress.UploadProgress(progress_config, image_id, backend,
                                   total, context=context, conf=conf)


@pytest.fixture(autouse=True)
def fresh():
    """No sender or notification left from another test."""
    notifier._SENDERS.clear()
    _impl_test.reset()
    yield
    for sender in notifier._SENDERS.values():
        sender.wait_idle(5)
    notifier._SENDERS.clear()


def _sent(image_id=None, timeout=5.0, until=None):
    """[(ctxt, message)] the test driver has, once ``until`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        found = [(c, m) for c, m, _prio, _retry in _impl_test.NOTIFICATIONS
                 if image_id is None or m['payload']['image_id'] == image_id]
        if until is None or until(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def _sender_threads():
    return [t for t in threading.enumerate()
            if t.name == 'glance-progress-notifier']


CONTEXT = context.RequestContext(project_id='p-1', user_id='u-1',
                                 request_id='req-1', auth_token='secret')


def test_a_known_size_upload_sends_rising_progress_then_stored():
    conf = _conf(store={'progress_notification_interval': 3600})
    upload = _upload(conf, 100 * MiB, context=CONTEXT)
    upload.start()
    for _ in range(100):
        upload.advance(MiB)
    upload.stored(100 * MiB)
    sent = _sent('img-1', until=lambda f: len(f) == 11)
    types_ = [m['event_type'] for _c, m in sent]
    # the first, then one per 10 % step (10 ... 90), then stored
    assert types_ == [events.PROGRESS] * 10 + [events.STORED]
    percents = [m['payload']['percent'] for _c, m in sent[:-1]]
    assert percents == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0,
                        80.0, 90.0]
    ctxt, stored = sent[-1]
    # glance's context, redacted by oslo.messaging
    assert (ctxt.project_id, ctxt.user_id, ctxt.request_id) == (
        'p-1', 'u-1', 'req-1')
    assert ctxt.auth_token is None
    assert stored['publisher_id'] == 'image.localhost'
    assert stored['priority'] == 'INFO'
    payload = stored['payload']
    assert {k: payload[k] for k in (
        'payload_version', 'image_id', 'backend', 'state', 'reason',
        'bytes', 'total', 'percent', 'project_id', 'user_id',
        'request_id')} == {
        'payload_version': 1, 'image_id': 'img-1', 'backend': None,
        'state': records.STORED, 'reason': None, 'bytes': 100 * MiB,
        'total': 100 * MiB, 'percent': 100.0, 'project_id': 'p-1',
        'user_id': 'u-1', 'request_id': 'req-1'}
    started = datetime.datetime.strptime(payload['started_at'],
                                         '%Y-%m-%dT%H:%M:%S.%fZ')
    updated = datetime.datetime.strptime(payload['updated_at'],
                                         '%Y-%m-%dT%H:%M:%S.%fZ')
    assert started <= updated
    assert payload['rate'] > 0


def test_an_unknown_size_has_no_total_and_steps_by_time_only():
    conf = _conf(store={'progress_notification_interval': 1.0})
    upload = _upload(conf, 0)
    upload.start()
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        upload.advance(MiB)
        time.sleep(0.05)
    upload.stored(upload.bytes)
    sent = _sent('img-1', until=lambda f: f and
                 f[-1][1]['event_type'] == events.STORED)
    progress_events = [m['payload'] for _c, m in sent
                       if m['event_type'] == events.PROGRESS]
    # the first, then one a second for 2.5 s: never more
    assert 2 <= len(progress_events) <= 3, progress_events
    assert all('total' not in p and 'percent' not in p
               for p in progress_events)
    sizes = [p['bytes'] for p in progress_events]
    assert sizes == sorted(sizes) and sizes[-1] > 0
    assert sent[-1][1]['payload']['total'] == upload.bytes


def test_throttle_sends_nothing_when_no_byte_moved():
    throttle = events.Throttle(interval=1.0, percent_step=10)
    assert throttle.due(0, 100, now=0.0)
    throttle.sent(0, 100, now=0.0)
    assert not throttle.due(0, 100, now=50.0)  # a stall: its own event
    assert not throttle.due(5, 100, now=0.5)
    assert throttle.due(5, 100, now=1.0)
    throttle.sent(5, 100, now=1.0)
    assert throttle.due(10, 100, now=1.1)  # crossed 10 %
    throttle.sent(95, 100, now=1.2)
    assert not throttle.due(99, 100, now=1.3)  # no 100 % step: stored


def test_a_failure_says_its_reason_code_with_error_priority():
    conf = _conf()
    upload = _upload(conf, 10 * MiB)
    upload.start()
    upload.advance(MiB)
    upload.failed(records.STORAGE_FULL)
    sent = _sent('img-1', until=lambda f: len(f) == 3)  # 0 %, 10 %
    failed = sent[-1][1]
    assert failed['event_type'] == events.FAILED
    assert failed['priority'] == 'ERROR'
    assert failed['payload']['state'] == records.FAILED
    assert failed['payload']['reason'] == records.STORAGE_FULL
    assert failed['payload']['reason'] in records.REASONS
    assert failed['payload']['bytes'] == MiB


def test_a_stall_is_reported_by_the_sender_then_its_resumption():
    conf = _conf(store={'progress_notification_stall_after': 0.3})
    upload = _upload(conf, 100 * MiB)
    upload.start()
    upload.advance(MiB)  # 1 %: no step
    stalled = _sent('img-1', until=lambda f: any(
        m['event_type'] == events.STALLED for _c, m in f))
    assert [m['event_type'] for _c, m in stalled] == [
        events.PROGRESS, events.STALLED]
    payload = stalled[-1][1]['payload']
    assert payload['state'] == states.STALLED == events.STALLED_STATE
    assert payload['bytes'] == MiB
    assert stalled[-1][1]['priority'] == 'WARN'
    time.sleep(0.5)  # reported once, not every 0.3 s
    assert len(_sent('img-1')) == 2
    upload.advance(MiB)
    upload.stored(2 * MiB)
    sent = _sent('img-1', until=lambda f: len(f) == 4)
    assert [m['event_type'] for _c, m in sent][2:] == [
        events.RESUMED, events.STORED]
    assert sent[2][1]['payload']['state'] == records.UPLOADING


def test_an_ended_upload_is_no_longer_watched():
    conf = _conf(store={'progress_notification_stall_after': 0.2})
    upload = _upload(conf, MiB)
    upload.start()
    upload.stored(MiB)
    time.sleep(0.5)
    assert [m['event_type'] for _c, m in _sent('img-1')] == [
        events.PROGRESS, events.STORED]


@pytest.mark.parametrize('disabled, expected', [
    ([], list(events.EVENT_TYPES)),
    (['image'], []),  # a group, as glance reads it
    (['image.upload'], list(events.EVENT_TYPES)),  # glance's own event
    (['image.upload.progress'], [events.STORED, events.FAILED,
                                 events.STALLED, events.RESUMED]),
    (['image.create', 'task'], list(events.EVENT_TYPES)),
])
def test_disabled_notifications_as_glance_reads_them(disabled, expected):
    assert [t for t in events.EVENT_TYPES
            if not events.is_disabled(t, disabled)] == expected


def test_disabled_progress_events_leave_the_state_events():
    conf = _conf(disabled_notifications=['image.upload.progress'])
    upload = _upload(conf, MiB)
    upload.start()
    upload.advance(MiB)
    upload.stored(MiB)
    sent = _sent('img-1', until=lambda f: f)
    assert [m['event_type'] for _c, m in sent] == [events.STORED]


def test_every_event_disabled_costs_nothing():
    conf = _conf(disabled_notifications=['image'])
    upload = _upload(conf, MiB)
    assert upload._events is None


@pytest.mark.parametrize('driver', [(), ('noop',)])
def test_glance_default_noop_driver_costs_nothing(driver):
    before = len(_sender_threads())
    conf = _conf(driver=driver)
    upload = _upload(conf, MiB)
    upload.start()
    upload.advance(MiB)
    upload.stored(MiB)
    assert upload._events is None
    assert notifier._SENDERS == {}
    assert len(_sender_threads()) == before


def test_the_option_turns_them_off():
    conf = _conf(store={'progress_notifications': False})
    assert _upload(conf, MiB)._events is None


def test_without_oslo_messaging_one_warning(monkeypatch, caplog):
    monkeypatch.setattr(notifier, 'oslo_messaging', None)
    monkeypatch.setattr(notifier, '_warned_missing', False)
    conf = cfg.ConfigOpts()
    conf.register_opts(options.OPTIONS, group='glance_store')
    conf([], project='gps-unit', default_config_files=[])
    with caplog.at_level(logging.WARNING):
        first = _upload(conf, MiB)
        second = _upload(conf, MiB)
    assert first._events is None and second._events is None
    warnings = [r for r in caplog.records if 'oslo.messaging' in r.message]
    assert len(warnings) == 1


class _Blocked:
    """A notifier whose every send waits: a broker that stopped answering.
    A fake because the unit tier runs no broker; tests/functional freezes
    a real one (SIGSTOP)."""

    def __init__(self):
        self.release = threading.Event()
        self.calls = []

    def _send(self, ctxt, event_type, payload):
        self.calls.append((event_type, payload['image_id']))
        self.release.wait()

    info = warn = error = _send


def test_the_queue_is_bounded_and_keeps_every_last_state(monkeypatch):
    monkeypatch.setattr(notifier, 'MAX_QUEUED', 50)
    conf = _conf(store={'progress_notification_interval': 1.0,
                        'progress_notification_percent_step': 1})
    sender = notifier.get_sender(conf)
    blocked = sender._notifier = _Blocked()
    uploads = []
    started = time.monotonic()
    for number in range(20):
        upload = _upload(conf, 100 * MiB, image_id='img-%d' % number)
        upload.start()
        for _ in range(100):  # 100 progress events each
            upload.advance(MiB)
        uploads.append(upload)
    for upload in uploads:
        upload.stored(100 * MiB)
    elapsed = time.monotonic() - started
    assert sender.queued() == 50
    assert sender.stats.dropped > 1900
    assert sender.stats.lost == 0
    assert elapsed < 5  # 2,000 chunks: nothing waited for the broker
    queued = list(sender._states) + list(sender._progress)
    stored = [e.upload.image_id for e in queued
              if e.event_type == events.STORED]
    assert sorted(stored) == sorted('img-%d' % n for n in range(20))
    blocked.release.set()
    assert sender.wait_idle(5)


def test_a_full_queue_of_last_states_drops_the_oldest(monkeypatch):
    monkeypatch.setattr(notifier, 'MAX_QUEUED', 5)
    conf = _conf()
    sender = notifier.get_sender(conf)
    sender._notifier = blocked = _Blocked()
    for number in range(8):
        upload = _upload(conf, MiB, image_id='img-%d' % number)
        upload.failed(records.SOURCE_ERROR)
        while not blocked.calls:  # img-0 in the thread's hands
            time.sleep(0.01)
    queued = [e.upload.image_id for e in sender._states]
    # one was in the thread's hands; the two oldest queued were dropped
    assert len(queued) == 5 and sender.stats.lost == 2
    assert queued == ['img-%d' % n for n in range(3, 8)]
    blocked.release.set()


def test_a_fork_starts_its_own_sender():
    conf = _conf()
    parent = notifier.get_sender(conf)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a uWSGI worker
        try:
            child = notifier.get_sender(conf)
            upload = _upload(conf, MiB, image_id='child')
            upload.start()
            upload.stored(MiB)
            ok = (child is not parent and child.wait_idle(5) and
                  child.stats.sent == 2)
            os.write(write, b'1' if ok else b'0')
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    assert answer == b'1'
    assert notifier.get_sender(conf) is parent


def _full_payload():
    context_ = context.RequestContext(project_id='p', user_id='u',
                                      request_id='req-x')
    upload = events.Upload('img', 'ceph1', 10, context_, started_at=1.0)
    upload.bytes, upload.moved_at = 5, 2.0
    return upload.payload(records.FAILED, records.STORAGE_ERROR, now=3.0)


def test_the_shipped_ceilometer_definition_has_a_trait_per_field():
    import pathlib
    import yaml
    path = (pathlib.Path(__file__).resolve().parents[2] / 'etc' /
            'ceilometer' / 'event_definitions.yaml')
    [definition] = yaml.safe_load(path.read_text())
    assert all(fnmatch.fnmatch(t, definition['event_type'])
               for t in events.EVENT_TYPES)
    assert not fnmatch.fnmatch('image.upload', definition['event_type'])
    fields = {trait['fields'] for trait in definition['traits'].values()}
    assert fields == {'payload.%s' % name for name in _full_payload()}
    types = {trait['fields'][len('payload.'):]: trait.get('type', 'text')
             for trait in definition['traits'].values()}
    python_types = {'int': int, 'float': float, 'text': (str, type(None)),
                    'datetime': str}
    for name, value in _full_payload().items():
        assert isinstance(value, python_types[types[name]]), name


def test_payload_version_1_has_exactly_these_fields():
    # the documented contract (doc/source/admin/notifications.rst)
    assert sorted(_full_payload()) == sorted([
        'payload_version', 'image_id', 'backend', 'state', 'reason',
        'bytes', 'total', 'percent', 'rate', 'started_at', 'updated_at',
        'project_id', 'user_id', 'request_id'])
    assert _full_payload()['rate'] == 5.0
    assert _full_payload()['started_at'] == '1970-01-01T00:00:01.000000Z'
