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

"""Streaming image data into an RBD image with Ceph and the CPU both busy.

The stock driver writes a chunk, waits for Ceph, then hashes the chunk,
so the cluster and the CPU take turns. Here each chunk is handed to
librbd's asynchronous write at once, a bounded number of writes stay in
flight, and the checksum, the multihash and the signature verifier are
fed by two hashing threads (hashlib releases the GIL) while the next
chunk is read. Progress counts only writes that Ceph has acknowledged,
and counts each one when Ceph acknowledges it, on a thread of its own: the
request thread may wait any time for the client's next chunk, and what
Ceph holds meanwhile is what an operator must see.
"""

import collections
import concurrent.futures
import errno
import logging
import queue
import threading

from oslo_utils import units

from glance_store import exceptions

LOG = logging.getLogger(__name__)

# An image of unknown size grows in steps that start at the first and
# double up to the most. Each step waits for the writes in flight (librbd's
# resize blocks writes while it runs) and costs a few round trips to the
# OSD, so steps are few; an RBD image is thin, so growing ahead of the data
# costs nothing, and the image shrinks to the data's size at the end.
FIRST_RESIZE_STEP = units.Gi
MAX_RESIZE_STEP = 8 * units.Gi


class WriteFailed(Exception):
    """An asynchronous write that Ceph refused, with its errno."""

    def __init__(self, code, offset, length):
        self.errno = code
        super().__init__(
            'write of %d bytes at offset %d failed: %s' % (
                length, offset, errno.errorcode.get(code, code)))


class SourceFailed(Exception):
    """Marks that reading the image data failed; wraps the original."""


class VerifierFailed(Exception):
    """Marks that the signature verifier failed; wraps the original."""


def _noop_callback(completion):
    # librbd calls this from its own thread with the GIL held; taking a
    # Python lock here can deadlock, so completions are waited on instead.
    pass


def _is_zero(chunk):
    return chunk[0] == 0 and chunk.count(0) == len(chunk)


class _Lane:
    """A single hashing thread fed one chunk at a time, in order."""

    def __init__(self, executor, functions):
        self._executor = executor
        self._functions = functions
        self._pending = None

    def _update(self, chunk):
        for function in self._functions:
            function(chunk)

    def feed(self, chunk):
        self.wait()
        self._pending = self._executor.submit(self._update, chunk)

    def wait(self):
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()


class _Acknowledger:
    """Counts each write in the upload's progress as Ceph acknowledges it.

    The request thread sends writes and then reads the client's next chunk,
    which a slow or paused client may take minutes to send; counting the
    writes only when it reaps them would leave the record behind the data
    Ceph holds (and ``stalled``) all that time. This thread waits for the
    writes in the order they were sent (a wait that holds no GIL, so it
    costs the upload nothing) and advances the progress at once, and
    publishes a state that ``progress_min_interval`` held back once the
    interval has passed. It never raises into the upload: a refused write
    is the request thread's to raise when it reaps it; counting stops
    there.
    """

    def __init__(self, progress):
        self._progress = progress
        self._sent = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, name='glance-progress-ack', daemon=True)
        self._thread.start()

    def sent(self, completion, length):
        """A write went to librbd (completion None: nothing to wait for)."""
        self._sent.put((completion, length))

    def close(self):
        """Count what is acknowledged and stop; call once every write sent
        has completed (reaped or abandoned), so that this never waits on
        Ceph, and before the upload's final state is published."""
        self._sent.put(None)
        self._thread.join()

    def _run(self):
        counting = True
        due_in = None
        while True:
            try:
                sent = self._sent.get(timeout=due_in)
            except queue.Empty:
                due_in = self._progress.publish_if_due()
                continue
            if sent is None:
                return
            completion, length = sent
            if not counting:
                continue
            try:
                if completion is not None:
                    completion.wait_for_complete_and_cb()
                    if completion.get_return_value() < 0:
                        counting = False
                        continue
                due_in = self._progress.advance(length)
            except Exception:
                LOG.warning('Counting acknowledged writes stops here; the '
                            'record shows the bytes counted so far',
                            exc_info=True)
                counting = False


class ImageWriter:
    """Writes one upload's data into an open, freshly created RBD image."""

    def __init__(self, image, image_size, chunk_size, writes_in_flight,
                 thin_provisioning, progress, share=None):
        self._image = image
        self._expected = image_size
        self._chunk_size = chunk_size
        self._max_in_flight = writes_in_flight
        self._thin = thin_provisioning
        self._progress = progress
        # The upload's part of its process's budget (budget.Share) for the
        # writes beyond the first; None: up to writes_in_flight freely.
        self._share = share
        # (completion, offset, chunk, bytes taken from the share)
        self._in_flight = collections.deque()
        self._capacity = image_size
        self._resize_step = 0
        self._acknowledger = None

    def write(self, image_file, checksum, multihash, verifier=None):
        """Stream `image_file` in; returns the number of bytes stored.

        Raises SourceFailed or VerifierFailed around errors of the source
        or of the verifier, WriteFailed for a refused write, Invalid when
        the data does not match the declared size.
        """
        offset = 0
        digest_functions = [checksum.update]
        if verifier is not None:
            digest_functions.append(verifier.update)
        with concurrent.futures.ThreadPoolExecutor(
                max_workers=2,
                thread_name_prefix='glance-progress-hash') as executor:
            lanes = (_Lane(executor, digest_functions),
                     _Lane(executor, [multihash.update]))
            self._acknowledger = _Acknowledger(self._progress)
            try:
                for chunk in self._read_chunks(image_file):
                    self._write_chunk(chunk, offset)
                    offset += len(chunk)
                    self._feed(lanes, chunk)
                    self._reap(block=False)
                self._wait_lanes(lanes)
                self._reap(block=True)
            except BaseException:
                self._abandon_in_flight()
                raise
            finally:
                self._acknowledger.close()
        if self._expected and offset != self._expected:
            raise exceptions.Invalid(
                'Size mismatch: expected %d bytes, got %d bytes' % (
                    self._expected, offset))
        if not self._expected and self._capacity != offset:
            self._image.resize(offset)
        return offset

    def _read_chunks(self, image_file):
        # glance passes a file-like object; an iterable of byte strings
        # is taken too, as glance_store's chunkreadable() does.
        read = getattr(image_file, 'read', None)
        source = None if read else iter(image_file)
        while True:
            try:
                chunk = read(self._chunk_size) if read else next(source)
            except StopIteration:
                return
            except Exception as e:
                raise SourceFailed(e) from e
            if not chunk:
                return
            yield chunk

    def _write_chunk(self, chunk, offset):
        end = offset + len(chunk)
        if self._expected and end > self._expected:
            raise exceptions.Invalid(
                'Size exceeds: expected %d bytes, got at least %d bytes' % (
                    self._expected, end))
        if end > self._capacity:
            self._grow(end)
        taken = self._make_room(len(chunk))
        if self._thin and _is_zero(chunk):
            completion = None  # a hole reads back as zeros
        else:
            completion = self._image.aio_write(chunk, offset, _noop_callback)
        self._in_flight.append((completion, offset, chunk, taken))
        self._acknowledger.sent(completion, len(chunk))

    def _make_room(self, nbytes):
        """Wait until one more write may go; returns what it takes.

        The upload's first write in flight is free (the stock driver
        holds one chunk too); the others need room in the share.
        """
        while True:
            if not self._in_flight:
                return 0
            if len(self._in_flight) < self._max_in_flight:
                if self._share is None:
                    return 0
                if self._share.try_take(nbytes):
                    return nbytes
            self._reap_oldest()

    def _grow(self, needed):
        # Writes past the end of an image fail, so every write in flight
        # lands before the image grows, and the image grows enough for the
        # whole chunk whatever its size.
        self._reap(block=True)
        while self._capacity < needed:
            self._resize_step = min(
                max(self._resize_step * 2, FIRST_RESIZE_STEP), MAX_RESIZE_STEP)
            self._capacity += self._resize_step
        LOG.debug('resizing image to %d KiB', self._capacity // units.Ki)
        self._image.resize(self._capacity)

    @staticmethod
    def _feed(lanes, chunk):
        try:
            for lane in lanes:
                lane.feed(chunk)
        except Exception as e:
            raise VerifierFailed(e) from e

    @staticmethod
    def _wait_lanes(lanes):
        try:
            for lane in lanes:
                lane.wait()
        except Exception as e:
            raise VerifierFailed(e) from e

    def _reap_oldest(self):
        completion, offset, chunk, taken = self._in_flight.popleft()
        if completion is not None:
            completion.wait_for_complete_and_cb()
        self._give_back(taken)
        if completion is not None:
            result = completion.get_return_value()
            if result < 0:
                raise WriteFailed(-result, offset, len(chunk))

    def _give_back(self, taken):
        if taken:
            self._share.give_back(taken)

    def _reap(self, block):
        while self._in_flight:
            completion = self._in_flight[0][0]
            if not block and completion is not None and (
                    not completion.is_complete()):
                return
            self._reap_oldest()

    def _abandon_in_flight(self):
        # The image is about to be removed: let librbd finish with the
        # buffers it holds, whatever the writes' results.
        while self._in_flight:
            completion, _, _, taken = self._in_flight.popleft()
            if completion is not None:
                completion.wait_for_complete_and_cb()
            self._give_back(taken)
