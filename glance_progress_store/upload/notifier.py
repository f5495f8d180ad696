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

"""Upload events on glance's notification bus, never on the upload's path.

glance_store gives its drivers no notifier, so this builds one as glance
does, from glance's own configuration (the CONF glance passes to its
stores): ``[oslo_messaging_notifications]`` driver, transport_url,
topics and retry, and ``default_publisher_id``. An upload only queues
its events in memory (:meth:`Sender.submit` takes a lock and returns);
one background thread per process and notification settings sends
them. oslo.messaging's ``notifier.info()`` blocks for as long as the
broker is slow, frozen or, with glance's default ``retry = -1``, down:
only that thread waits. Its queue is bounded (:data:`MAX_QUEUED`): the
oldest progress events go first, and each upload's last state event
stays. The same thread's timer reports the uploads that stopped moving
(``image.upload.stalled``).

With glance's default driver (noop) there is no sender and no thread.
What the events say is :mod:`glance_progress_store.upload.events`'.
"""

import atexit
import collections
import dataclasses
import logging
import os
import threading
import time
import weakref

from oslo_config import cfg

from glance_progress_store import records
from glance_progress_store.upload import events

try:
    # glance brings it; a glance_store without glance may lack it
    import oslo_messaging
    from oslo_messaging import opts as messaging_opts
except ImportError:
    oslo_messaging = messaging_opts = None

LOG = logging.getLogger(__name__)

# Events waiting for the broker, all uploads of a process together. A
# few hundred bytes each; past this many, the oldest progress event is
# dropped (then the oldest state event that a later one of the same
# upload supersedes, then the oldest).
MAX_QUEUED = 10000
# At most one warning of each kind in this many seconds.
_WARN_EVERY = 60.0
_GROUP = 'oslo_messaging_notifications'
# glance's default_publisher_id, when glance did not register it (tools
# and tests that load the store without glance).
DEFAULT_PUBLISHER_ID = 'image.localhost'


@dataclasses.dataclass
class SenderStats:
    sent: int = 0  # events handed to oslo.messaging
    dropped: int = 0  # progress events dropped from a full queue
    lost: int = 0  # state events dropped from a full queue
    errors: int = 0  # events oslo.messaging raised on


@dataclasses.dataclass
class _Event:
    seq: int
    upload: object  # the UploadEvents it belongs to
    event_type: str
    payload: dict


class Sender:
    """Sends the events of every upload from one background thread.

    The oslo.messaging transport and notifier are made by that thread on
    its first event: loading the driver is no upload's business, and a
    broker that cannot be reached costs only this thread.
    """

    def __init__(self, conf, publisher_id):
        self._conf = conf
        self.publisher_id = publisher_id
        self.stats = SenderStats()
        self._cond = threading.Condition(threading.Lock())
        self._progress = collections.deque()  # _Event, oldest first
        self._states = collections.deque()
        self._seq = 0
        self._busy = False  # an event is being sent
        self._watched = weakref.WeakSet()  # UploadEvents, for stalls
        self._notifier = None
        self._thread = None
        self._last_warning = {}

    # -- the upload's side: take the lock, queue, return ---------------

    def submit(self, upload, event_type, payload):
        with self._cond:
            self._queue(upload, event_type, payload)
            self._ensure_thread()
            self._cond.notify()

    def watch(self, upload):
        """Check ``upload`` (an UploadEvents) for stalls until unwatched."""
        with self._cond:
            self._watched.add(upload)
            self._ensure_thread()
            self._cond.notify()

    def unwatch(self, upload):
        with self._cond:
            self._watched.discard(upload)

    def resume(self, upload, payload):
        """An upload reported stalled moved again: its resumed event."""
        with self._cond:
            if not upload.stalled:
                return
            upload.stalled = False
            if upload.enabled(events.RESUMED):
                self._queue(upload, events.RESUMED, payload)
                self._ensure_thread()
                self._cond.notify()

    def _queue(self, upload, event_type, payload):
        self._seq += 1
        event = _Event(self._seq, upload, event_type, payload)
        if event_type == events.PROGRESS:
            self._progress.append(event)
        else:
            self._states.append(event)
        if len(self._progress) + len(self._states) > MAX_QUEUED:
            self._drop()

    def _drop(self):
        if self._progress:
            dropped = self._progress.popleft()
            self.stats.dropped += 1
            self._warn_rarely('dropped', 'More than %d upload events wait '
                              'for the notification bus; dropping the '
                              'oldest progress event (image %s)',
                              MAX_QUEUED, dropped.upload.image_id)
            return
        counts = collections.Counter(id(e.upload) for e in self._states)
        for position, event in enumerate(self._states):
            if counts[id(event.upload)] > 1:  # a later one supersedes it
                del self._states[position]
                self.stats.dropped += 1
                return
        lost = self._states.popleft()
        self.stats.lost += 1
        self._warn_rarely('lost', 'More than %d uploads\' final events '
                          'wait for the notification bus; dropping the '
                          'oldest (%s of image %s)', MAX_QUEUED,
                          lost.event_type, lost.upload.image_id)

    def _ensure_thread(self):
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name='glance-progress-notifier',
                daemon=True)
            self._thread.start()

    # -- the sender thread ---------------------------------------------

    def _next_event(self):
        """The oldest queued event, reporting stalls meanwhile."""
        while True:
            now = time.monotonic()
            wake = None
            for upload in list(self._watched):
                if upload.stalled:
                    continue
                stall_at = upload.moved_mono + upload.stall_after
                if stall_at <= now:
                    upload.stalled = True
                    if upload.enabled(events.STALLED):
                        self._queue(upload, events.STALLED,
                                    upload.payload(events.STALLED_STATE))
                else:
                    wake = stall_at if wake is None else min(wake, stall_at)
            if self._progress or self._states:
                if not self._states or (
                        self._progress and
                        self._progress[0].seq < self._states[0].seq):
                    return self._progress.popleft()
                return self._states.popleft()
            self._cond.wait(None if wake is None else wake - now)

    def _run(self):
        while True:
            try:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
                    event = self._next_event()
                    self._busy = True
                self._send(event)
            except Exception:  # the thread must never die
                self.stats.errors += 1
                self._warn_rarely('crash', 'Upload notification sender '
                                  'error; it carries on', exc_info=True)
                time.sleep(1.0)

    def _send(self, event):
        if self._notifier is None:
            transport = oslo_messaging.get_notification_transport(self._conf)
            self._notifier = oslo_messaging.Notifier(
                transport, publisher_id=self.publisher_id)
        notify = getattr(self._notifier, events.PRIORITIES[event.event_type])
        # oslo.messaging logs and swallows the driver's errors itself
        notify(event.upload.ctxt, event.event_type, event.payload)
        self.stats.sent += 1

    def wait_idle(self, timeout):
        """Wait, at most ``timeout`` s, until every queued event is sent;
        True if it was."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._progress or self._states or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def queued(self):
        with self._cond:
            return len(self._progress) + len(self._states)

    def _warn_rarely(self, kind, message, *args, exc_info=False):
        now = time.monotonic()
        if now - self._last_warning.get(kind, -_WARN_EVERY) >= _WARN_EVERY:
            self._last_warning[kind] = now
            LOG.warning(message, *args, exc_info=exc_info)


class UploadEvents:
    """The events of one upload; lives in its add() call, like
    UploadProgress, and is called on the upload's thread only."""

    def __init__(self, sender, upload, throttle, stall_after, enabled,
                 context=None):
        self._sender = sender
        self.upload = upload  # events.Upload
        self.image_id = upload.image_id
        # glance's request context, as nova and cinder pass theirs:
        # oslo.messaging sends its redacted copy (no token), and drops
        # anything else.
        self.ctxt = context if hasattr(context, 'redacted_copy') else None
        self._throttle = throttle
        self.stall_after = stall_after
        self._enabled = enabled
        self.moved_mono = time.monotonic()
        self.stalled = False  # set and cleared under the sender's lock

    def enabled(self, event_type):
        return event_type in self._enabled

    def payload(self, state, reason=None):
        return self.upload.payload(state, reason)

    def start(self):
        """The first progress event; stall checks from now on."""
        self.moved_mono = time.monotonic()
        self._progress(self.moved_mono)
        if self.stall_after and (self.enabled(events.STALLED) or
                                 self.enabled(events.RESUMED)):
            self._sender.watch(self)

    def advance(self, nbytes):
        """``nbytes`` in all are stored; a progress event if one is due."""
        self.upload.bytes = nbytes
        self.upload.moved_at = time.time()
        now = self.moved_mono = time.monotonic()
        if self.stalled:
            self._sender.resume(self, self.payload(records.UPLOADING))
        self._progress(now)

    def _progress(self, now):
        upload = self.upload
        if (self.enabled(events.PROGRESS) and
                self._throttle.due(upload.bytes, upload.total, now)):
            self._throttle.sent(upload.bytes, upload.total, now)
            self._sender.submit(self, events.PROGRESS,
                                self.payload(records.UPLOADING))

    def stored(self, size):
        self.upload.bytes = self.upload.total = size
        self._end(events.STORED, self.payload(records.STORED))

    def failed(self, reason):
        self._end(events.FAILED, self.payload(records.FAILED, reason))

    def _end(self, event_type, payload):
        self._sender.unwatch(self)
        if self.enabled(event_type):
            self._sender.submit(self, event_type, payload)


_SENDERS = {}
_SENDERS_LOCK = threading.Lock()
_warned_missing = False


def _settings(conf):
    """glance's notification settings, registering oslo.messaging's
    options on ``conf`` first if glance has not (tools, tests)."""
    try:
        group = conf[_GROUP]
        group.driver
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError, KeyError):
        for name, opts in messaging_opts.list_opts():
            if name == _GROUP:
                conf.register_opts(opts, group=_GROUP)
        group = conf[_GROUP]
    return group


def _glance_option(conf, name, default):
    """An option glance registers (glance.notifier), or its default."""
    try:
        return conf[name]
    except (cfg.NoSuchOptError, KeyError):
        return default


def get_sender(conf):
    """The process's Sender for glance's settings in ``conf``, or None
    when glance sends no notifications (its driver is noop)."""
    global _warned_missing
    if oslo_messaging is None:
        if not _warned_missing:
            _warned_missing = True
            LOG.warning('oslo.messaging is not installed: progress_rbd '
                        'sends no upload notifications')
        return None
    group = _settings(conf)
    drivers = tuple(d for d in group.driver if d != 'noop')
    if not drivers:
        return None
    publisher_id = _glance_option(conf, 'default_publisher_id',
                                  DEFAULT_PUBLISHER_ID)
    key = (id(conf), drivers, group.transport_url, tuple(group.topics),
           group.retry, publisher_id)
    with _SENDERS_LOCK:
        sender = _SENDERS.get(key)
        if sender is None:
            sender = _SENDERS[key] = Sender(conf, publisher_id)
        return sender


def for_upload(conf, progress_config, image_id, backend, total,
               context=None):
    """The UploadEvents of one upload, or None when none are sent.

    ``conf`` is glance's CONF (the store's ``self.conf``); never raises:
    an upload goes on without notifications rather than fail.
    """
    if not progress_config.notifications or conf is None:
        return None
    try:
        sender = get_sender(conf)
        if sender is None:
            return None
        disabled = _glance_option(conf, 'disabled_notifications', [])
        enabled = {t for t in events.EVENT_TYPES
                   if not events.is_disabled(t, disabled)}
        if not enabled:
            return None
        return UploadEvents(
            sender, events.Upload(image_id, backend, total, context),
            events.Throttle(progress_config.notification_interval,
                            progress_config.notification_percent_step),
            progress_config.notification_stall_after, enabled, context)
    except Exception:
        LOG.warning('Upload notifications of image %s are off: their '
                    'settings could not be read', image_id, exc_info=True)
        return None


def _forget_senders_after_fork():
    # Threads do not survive fork() and the locks may be held: a child
    # (uWSGI prefork worker) builds its own sender, and transport, on
    # first use.
    global _SENDERS_LOCK
    _SENDERS.clear()
    _SENDERS_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_senders_after_fork)


@atexit.register
def _flush_at_exit():
    # A process that stops cleanly sends what it has, briefly: never
    # more than a second per sender whatever the broker does.
    for sender in list(_SENDERS.values()):
        sender.wait_idle(timeout=1.0)
