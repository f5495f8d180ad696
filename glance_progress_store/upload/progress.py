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

"""What one upload publishes: its records, as Ceph acknowledges its bytes.

An :class:`UploadProgress` lives in one ``add()`` call, never on the
shared Store; it hands each new state to the process's
:class:`~glance_progress_store.upload.publisher.Publisher`, which sends it
in the background, so publishing never slows the upload down. Its events
for glance's notification bus go the same way, to the process's
:class:`~glance_progress_store.upload.notifier.Sender`.
"""

import logging
import time

from glance_progress_store import records
from glance_progress_store.upload import notifier
from glance_progress_store.upload import publisher

LOG = logging.getLogger(__name__)


class UploadProgress:
    """The progress of one upload; lives in the add() call, never on self.

    Called by one thread at a time: the request thread publishes the first
    state, the writer's acknowledger thread counts bytes, and the request
    thread publishes the final states once that thread has stopped.
    """

    def __init__(self, config, image_id, backend, total, context=None,
                 conf=None):
        """``context`` is add()'s request context, ``conf`` glance's
        CONF (the store's): without it, no notifications."""
        self.bytes = 0
        self.total = total or None
        self._image_id = str(image_id)
        self._backend = backend
        self._config = config
        self._started_at = time.time()
        self._last_published = 0.0
        self._published_bytes = 0
        self._publisher = None
        if config.enabled:
            self._publisher = publisher.get_publisher(
                config.servers, config.socket_timeout)
            keys = [records.keys_for(image_id, None, config.key_prefix)]
            if backend:
                keys.append(records.keys_for(image_id, backend,
                                             config.key_prefix))
            self._keys = keys
            self._upload = publisher.UploadKey(config.key_prefix,
                                               self._image_id, backend)
        self._events = notifier.for_upload(conf, config, image_id, backend,
                                           total, context)

    def start(self):
        """Publish the first record, once the RBD image exists.

        Not done at construction: an upload refused as a duplicate must
        leave the existing image's record untouched.
        """
        self._publish(records.UPLOADING)
        self._notify('start')

    def advance(self, nbytes):
        """Count bytes that Ceph has acknowledged; returns what
        :meth:`publish_if_due` returns."""
        self.bytes += nbytes
        if self._events is not None:
            self._notify('advance', self.bytes)
        return self.publish_if_due()

    def publish_if_due(self):
        """Publish the bytes counted since the last record, unless a record
        went out less than ``progress_min_interval`` ago.

        Returns the seconds until the bytes held back are due, or None
        when nothing is held back: the caller asks again then, so that the
        last bytes before a pause are never held back for the pause.
        """
        if self._publisher is None or self.bytes == self._published_bytes:
            return None
        due_in = (self._last_published + self._config.min_interval -
                  time.monotonic())
        if due_in > 0:
            return due_in
        self._publish(records.UPLOADING)
        return None

    def finalizing(self):
        self._publish(records.FINALIZING)

    def stored(self, size):
        self.bytes = self.total = size
        self._publish(records.STORED, final=True)
        self._notify('stored', size)

    def failed(self, reason):
        self._publish(records.FAILED, reason=reason, final=True)
        self._notify('failed', reason)

    def _notify(self, what, *args):
        """Queue this upload's event; never an error into the upload."""
        if self._events is None:
            return
        try:
            getattr(self._events, what)(*args)
        except Exception:
            LOG.warning('Upload notifications of image %s stop here',
                        self._image_id, exc_info=True)
            self._events = None

    def _publish(self, state, reason=None, final=False):
        if self._publisher is None:
            return
        self._last_published = time.monotonic()
        self._published_bytes = self.bytes
        record = records.ProgressRecord(
            state=state, bytes=self.bytes, total=self.total,
            backend=self._backend, started_at=self._started_at,
            updated_at=time.time(), reason=reason)
        values = {}
        for keys in self._keys:
            values.update(records.key_values(keys, record))
        index = None
        if self._config.discovery:
            index = (self._config.index_ttl, self._config.index_retention)
        self._publisher.submit(self._upload, values, self._config.ttl, final,
                               index=index)
        if final:
            self._publisher.flush(self._upload, self._config.socket_timeout,
                                  skip_down=True)
