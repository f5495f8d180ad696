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

"""The ``progress_rbd`` glance_store driver.

A drop-in replacement for glance_store's RBD store: same options, same
``rbd://fsid/pool/image/snap`` locations, same results, but uploads are
pipelined into Ceph and publish their progress to memcached.
"""

import errno
import logging
import math
import time

from glance_store._drivers import rbd as rbd_driver
from glance_store import capabilities
from glance_store.common import utils
from glance_store import driver
from glance_store import exceptions

from glance_progress_store import options
from glance_progress_store import records
from glance_progress_store.upload import budget
from glance_progress_store.upload import config
from glance_progress_store.upload import pipeline
from glance_progress_store.upload import progress

rbd = rbd_driver.rbd
rados = rbd_driver.rados

LOG = logging.getLogger(__name__)

SCHEME = records.SCHEME

# glance_store imports "<driver module>.StoreLocation" for our locations,
# which are the stock RBD ones.
StoreLocation = rbd_driver.StoreLocation

_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# How long a failed upload may spend removing its partial image.
CLEANUP_TIMEOUT = 30


class Store(rbd_driver.Store):
    """RBD store that streams uploads and publishes their progress.

    No upload state lives on the instance, so one Store may serve any
    number of concurrent uploads and glance may reuse it between requests.
    """

    _CAPABILITIES = (capabilities.BitMasks.RW_ACCESS |
                     capabilities.BitMasks.DRIVER_REUSABLE)
    # In a backend group glance_store registers only the driver's own
    # OPTIONS, so they are the stock RBD options (the same objects) plus
    # ours.
    OPTIONS = rbd_driver.Store.OPTIONS + options.OPTIONS

    def get_schemes(self):
        # "rbd" for the locations; "progress_rbd" because glance_store
        # looks up a multi-store backend type as if it were a scheme.
        return ('rbd', SCHEME)

    def configure_add(self):
        super().configure_add()
        _warn_if_uwsgi_runs_no_threads()
        self.progress_config = config.ProgressConfig(
            self._options_group(), self.backend_group or SCHEME)

    def _options_group(self):
        # glance_store 5.x reads options through store_conf, which also
        # falls back to [backend_defaults]; older releases read the group.
        store_conf = getattr(self, 'store_conf', None)
        if store_conf is not None:
            return store_conf
        if self.backend_group:
            return getattr(self.conf, self.backend_group)
        return self.conf.glance_store

    @driver.back_compat_add
    @capabilities.check
    def add(self, image_id, image_file, image_size, hashing_algo,
            context=None, verifier=None):
        """Store an image, publishing its progress to memcached.

        :returns: tuple of: (1) URL in backing store, (2) bytes written,
                  (3) checksum, (4) multihash value, and (5) a dictionary
                  with storage system specific information
        :raises: `glance_store.exceptions.Duplicate` if the image already
                 exists; `StorageFull` when the pool or the cluster is full
                 or over quota; `Invalid` when the data does not match
                 `image_size`
        """
        multihash = utils.get_hasher(hashing_algo, False)
        checksum = utils.get_hasher('md5', False)
        image_name = str(image_id)
        with self.get_connection(conffile=self.conf_file,
                                 rados_id=self.user) as conn:
            fsid = conn.get_fsid()
            with conn.open_ioctx(self.pool) as ioctx:
                # By default librados pauses writes to a full pool or
                # cluster until space returns, hanging the upload forever;
                # full-try makes them fail with EDQUOT/ENOSPC instead.
                ioctx.set_osdmap_full_try()
                order = int(math.log(self.WRITE_CHUNKSIZE, 2))
                LOG.debug('creating image %s with order %d and size %d',
                          image_name, order, image_size)
                upload = progress.UploadProgress(
                    self.progress_config, image_id, self.backend_group,
                    image_size, context=context, conf=self.conf)
                try:
                    loc = self._create_image(fsid, conn, ioctx, image_name,
                                             image_size, order)
                except rbd.ImageExists:
                    raise exceptions.Duplicate(
                        message='RBD image %s already exists' % image_name)
                except Exception as exc:
                    # Not known to be ours: an image of that name may
                    # have been created by someone else meanwhile.
                    raise self._abort(ioctx, image_name, upload, exc,
                                      created=False)

                upload.start()
                process_budget = budget.for_store(
                    self.backend_group or SCHEME,
                    self.progress_config.process_in_flight)
                try:
                    with rbd.Image(ioctx, image_name) as image, \
                            process_budget.share() as share:
                        writer = pipeline.ImageWriter(
                            image, image_size, self.WRITE_CHUNKSIZE,
                            self.progress_config.writes_in_flight,
                            self.thin_provisioning, upload, share)
                        size = writer.write(image_file, checksum, multihash,
                                            verifier)
                        upload.finalizing()
                        image.create_snap(loc.snapshot)
                        image.protect_snap(loc.snapshot)
                except BaseException as exc:
                    raise self._abort(ioctx, image_name, upload, exc)

        upload.stored(size)
        metadata = {}
        if self.backend_group:
            metadata['store'] = self.backend_group
        return (loc.get_uri(), size, checksum.hexdigest(),
                multihash.hexdigest(), metadata)

    def _abort(self, ioctx, image_name, upload, exc, created=True):
        """The one failure path: remove the image, record why, pick the error.

        Only an image this call ``created`` is removed. Returns the
        exception the caller raises: a glance_store exception for storage
        failures, the original one for source, verifier and size errors.
        """
        reason, error = _classify(exc)
        LOG.error('Failed to store image %(image)s in pool %(pool)s '
                  '(%(reason)s): %(error)s',
                  {'image': image_name, 'pool': self.pool, 'reason': reason,
                   'error': error})
        if created:
            self._remove_partial_image(ioctx, image_name)
        upload.failed(reason)
        if error is not exc and error is not exc.__cause__:
            error.__cause__ = exc  # a translation: keep what Ceph said
        return error

    def _remove_partial_image(self, ioctx, image_name):
        """Remove what a failed upload wrote, even from a pool over quota.

        A pool over quota refuses the metadata updates of an image removal
        but still accepts object deletions, so when a plain removal fails
        the data objects are deleted first; once the usage is below the
        quota again the removal is retried, for a bounded time.
        """
        deadline = time.monotonic() + CLEANUP_TIMEOUT
        delay = 0.25
        purged = False
        while True:
            try:
                _remove_image(ioctx, image_name)
                return
            except Exception as e:
                error = e
            try:
                if not _image_exists(ioctx, image_name):
                    return
                if not purged:
                    _purge_data_objects(ioctx, image_name)
                    purged = True
            except Exception as e:
                error = e
            if time.monotonic() + delay > deadline:
                LOG.error('Could not remove the partial RBD image '
                          '%(pool)s/%(image)s: %(error)s; remove it with '
                          '"rbd rm"', {'pool': self.pool,
                                       'image': image_name, 'error': error})
                return
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


_threads_checked = False


def _warn_if_uwsgi_runs_no_threads():
    """Say once per process, in glance-api's log, that uWSGI runs no
    Python threads.

    The publisher sends records from a thread of its own. A uWSGI that
    did not enable threads (before 2.0.27: without ``enable-threads`` or
    ``threads``) keeps the GIL while a worker waits for a request, so the
    thread runs only while its worker serves one: the last record of an
    upload (stored, failed) waits for the worker's next request. The
    ``uwsgi`` module exists only inside uWSGI; its ``has_threads`` is
    what uWSGI decided from its options and its defaults.
    """
    global _threads_checked
    if _threads_checked:
        return
    _threads_checked = True
    try:
        import uwsgi
    except ImportError:
        return
    if getattr(uwsgi, 'has_threads', True):
        return
    LOG.warning('uWSGI runs this glance-api without Python threads: '
                'progress records are sent only while a worker serves a '
                'request, so an upload\'s last state shows late or not at '
                'all. Set "enable-threads = true" in glance-api\'s uWSGI '
                'configuration, as glance\'s own glance-api-uwsgi.ini does.')


def _image_exists(ioctx, image_name):
    try:
        with rbd.Image(ioctx, image_name, read_only=True):
            return True
    except rbd.ImageNotFound:
        return False


def _remove_image(ioctx, image_name):
    with rbd.Image(ioctx, image_name) as image:
        for snap in image.list_snaps():
            if image.is_protected_snap(snap['name']):
                image.unprotect_snap(snap['name'])
            image.remove_snap(snap['name'])
    rbd.RBD().remove(ioctx, image_name)


def _purge_data_objects(ioctx, image_name, batch=128):
    with rbd.Image(ioctx, image_name, read_only=True) as image:
        info = image.stat()
    names = ['%s.%016x' % (info['block_name_prefix'], number)
             for number in range(info['num_objs'])]
    for start in range(0, len(names), batch):
        completions = [ioctx.aio_remove(name)
                       for name in names[start:start + batch]]
        for completion in completions:
            completion.wait_for_complete()


def _classify(exc):
    """(reason code for the progress record, exception to raise)."""
    if isinstance(exc, pipeline.SourceFailed):
        return records.SOURCE_ERROR, exc.__cause__
    if isinstance(exc, pipeline.VerifierFailed):
        return records.VERIFIER_FAILED, exc.__cause__
    if isinstance(exc, exceptions.Invalid):
        return records.SIZE_MISMATCH, exc
    if isinstance(exc, exceptions.StorageFull) or isinstance(
            exc, (rbd.NoSpace, rbd.DiskQuotaExceeded)) or (
            isinstance(exc, pipeline.WriteFailed) and
            exc.errno in _FULL_ERRNOS):
        return records.STORAGE_FULL, exceptions.StorageFull(
            message='Ceph pool or cluster is full or over quota: %s' % exc)
    if (isinstance(exc, pipeline.WriteFailed) and
            exc.errno == errno.ETIMEDOUT) or isinstance(
                exc, (rbd.Timeout, rados.TimedOut)):
        return records.STORAGE_TIMEOUT, exceptions.BackendException(
            'Ceph did not answer in time: %s' % exc)
    if isinstance(exc, (rbd.Error, rados.Error, pipeline.WriteFailed)):
        return records.STORAGE_ERROR, exceptions.BackendException(
            'Ceph error: %s' % exc)
    if isinstance(exc, Exception):
        return records.STORAGE_ERROR, exc
    return records.INTERRUPTED, exc
