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

"""What the notification tests share: a listener on a real broker, as
Ceilometer listens, and the settings that make a store send there."""

import threading
import time
import uuid

from oslo_config import cfg
import oslo_messaging

from glance_progress_store.upload import events
from glance_progress_store.upload import notifier


class Listener:
    """oslo.messaging's notification listener on ``topic`` of a broker.

    Every notification is kept as a dict: priority, publisher_id,
    event_type, payload, ctxt. Use it as a context manager.
    """

    def __init__(self, transport_url, topic, exchange):
        conf = cfg.ConfigOpts()
        conf([], project='gps-listener', default_config_files=[])
        self._transport = oslo_messaging.get_notification_transport(
            conf, url=transport_url)
        self._cond = threading.Condition()
        self.received = []
        self._listener = oslo_messaging.get_notification_listener(
            self._transport,
            [oslo_messaging.Target(topic=topic, exchange=exchange)],
            [self], executor='threading')

    def _got(self, priority, ctxt, publisher_id, event_type, payload):
        with self._cond:
            self.received.append({
                'priority': priority, 'publisher_id': publisher_id,
                'event_type': event_type, 'payload': payload, 'ctxt': ctxt})
            self._cond.notify_all()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._got('info', ctxt, publisher_id, event_type, payload)

    def warn(self, ctxt, publisher_id, event_type, payload, metadata):
        self._got('warn', ctxt, publisher_id, event_type, payload)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self._got('error', ctxt, publisher_id, event_type, payload)

    def of(self, image_id, prefix='image.upload.'):
        """Our events of one image, in the order received."""
        with self._cond:
            return [n for n in self.received
                    if n['event_type'].startswith(prefix) and
                    isinstance(n['payload'], dict) and
                    n['payload'].get('image_id') == image_id]

    def wait(self, what, predicate, timeout=30):
        """Wait until predicate() is truthy; return it, or fail saying
        what was received."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError('no %s within %s s; received: %r'
                                         % (what, timeout, [
                                             (n['event_type'],
                                              n['payload'])
                                             for n in self.received[-20:]]))
                self._cond.wait(min(remaining, 0.5))

    def wait_final(self, image_id, timeout=30):
        """The image's events once its stored or failed event came."""
        return self.wait(
            'final event of %s' % image_id,
            lambda: (lambda got: got if got and got[-1]['event_type'] in (
                events.STORED, events.FAILED) else None)(self.of(image_id)),
            timeout)

    def __enter__(self):
        self._listener.start()
        return self

    def __exit__(self, *exc):
        self._listener.stop()
        self._listener.wait()
        self._transport.cleanup()


def unique_topic():
    """A topic of one test module: nothing another test left behind."""
    return 'gps-test-%s' % uuid.uuid4().hex[:8]


def send_to(conf, transport_url, topic, retry=None):
    """Make ``conf`` (a store's, as glance's CONF) send notifications to
    ``topic`` on the broker, as glance-api.conf's
    ``[oslo_messaging_notifications]`` does."""
    notifier._settings(conf)
    group = 'oslo_messaging_notifications'
    conf.set_override('driver', ['messagingv2'], group=group)
    conf.set_override('transport_url', transport_url, group=group)
    conf.set_override('topics', [topic], group=group)
    if retry is not None:
        conf.set_override('retry', retry, group=group)
