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

"""The upload notifications' contract: event types, payload, throttle.

What consumers (Ceilometer, Aodh, billing portals) rely on, documented
in doc/source/admin/notifications.rst. The states and reasons are the
record contract's (:mod:`glance_progress_store.records`), plus the
readers' ``stalled``. How the payload grows (:data:`PAYLOAD_VERSION` is
1), as the record contract grows:

* A field may be added without a version change; consumers ignore what
  they do not know.
* Removing or renaming a field, changing its type or meaning, or adding
  a state or an event type that replaces one needs ``payload_version``
  2.

Nothing here sends anything: :mod:`glance_progress_store.upload.notifier`
does, from a background thread.
"""

import datetime
import time

from glance_progress_store import records

#: The version of the payload this release sends.
PAYLOAD_VERSION = 1

PROGRESS = 'image.upload.progress'
STORED = 'image.upload.stored'
FAILED = 'image.upload.failed'
STALLED = 'image.upload.stalled'
RESUMED = 'image.upload.resumed'
EVENT_TYPES = (PROGRESS, STORED, FAILED, STALLED, RESUMED)
#: The ``state`` of a stalled event: the readers' word for an upload
#: that stopped moving (read.states.STALLED, which this layer may not
#: import; a unit test keeps them equal).
STALLED_STATE = 'stalled'
#: oslo.messaging's priority of each event type.
PRIORITIES = {PROGRESS: 'info', STORED: 'info', FAILED: 'error',
              STALLED: 'warn', RESUMED: 'info'}


def is_disabled(event_type, disabled_notifications):
    """glance's rule for ``disabled_notifications`` (glance.notifier's
    _is_notification_enabled): the event type itself, or its group, the
    part before the first dot (``image``). So ``image.upload`` disables
    glance's own event only, and ``image.upload.progress`` ours."""
    names = (event_type, event_type.split('.', 1)[0])
    return any(item in names for item in disabled_notifications)


def _iso(epoch):
    return datetime.datetime.fromtimestamp(
        epoch, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


class Upload:
    """What the events of one upload say about it; not thread-bound.

    ``context`` is glance's request context (``add()``'s), or None:
    its project, user and request ids go into the payload when present.
    """

    def __init__(self, image_id, backend, total, context=None,
                 started_at=None):
        self.image_id = str(image_id)
        self.backend = backend
        self.total = total or None
        self.bytes = 0
        self.started_at = time.time() if started_at is None else started_at
        self.moved_at = self.started_at  # epoch: the last stored bytes
        self.ids = {}
        for field in ('project_id', 'user_id', 'request_id'):
            value = getattr(context, field, None)
            if isinstance(value, str) and value:
                self.ids[field] = value

    def payload(self, state, reason=None, now=None):
        """The payload (version :data:`PAYLOAD_VERSION`) at ``now``."""
        now = time.time() if now is None else now
        body = {
            'payload_version': PAYLOAD_VERSION,
            'image_id': self.image_id,
            'backend': self.backend,
            'state': state,
            'reason': reason,
            'bytes': self.bytes,
            'started_at': _iso(self.started_at),
            'updated_at': _iso(now),
        }
        if self.total is not None:
            body['total'] = self.total
            if self.total:
                body['percent'] = round(
                    min(100.0, 100.0 * self.bytes / self.total), 1)
            elif state == records.STORED:  # an empty image
                body['percent'] = 100.0
        moving = self.moved_at - self.started_at
        if moving > 0:
            body['rate'] = round(self.bytes / moving, 1)
        body.update(self.ids)
        return body


class Throttle:
    """When an upload's next progress event is due: the first at once,
    then one per ``interval`` seconds while bytes move, and one each time
    the upload crosses a ``percent_step`` (0: none)."""

    def __init__(self, interval, percent_step):
        self.interval = interval
        self.percent_step = percent_step
        self._last_at = None  # monotonic
        self._next_percent = None
        self._last_bytes = None

    def due(self, nbytes, total, now):
        """True if a progress event is due for ``nbytes`` of ``total``."""
        if self._last_at is None:
            return True
        if nbytes == self._last_bytes:
            return False
        if now - self._last_at >= self.interval:
            return True
        return (self._next_percent is not None and total and
                100.0 * nbytes / total >= self._next_percent)

    def sent(self, nbytes, total, now):
        self._last_at = now
        self._last_bytes = nbytes
        if self.percent_step and total:
            done = 100.0 * nbytes / total
            steps = int(done // self.percent_step) + 1
            self._next_percent = steps * self.percent_step
            if self._next_percent >= 100.0:
                self._next_percent = None  # the stored event says 100
