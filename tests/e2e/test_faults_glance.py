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

"""Real faults under a real glance-api: memcached, Ceph and the clients.

Each test injects a fault into the real stack (glance-api under uWSGI, a
one-node Ceph cluster, memcached) and checks three things: what the user
sees (HTTP status, glanceclient exception, image status), what Ceph holds
(no orphan RBD image, no missing data, the right hashes) and what the
progress record says, read the way operators read it (ProgressReader).

The faults would disturb the session's fixtures, so this module boots its
own Ceph cluster (with a mgr: pool quotas need one), memcached and
glance-api stacks, and stops them at the end (the fixtures are in
tests/e2e/conftest.py, the helpers in tests/e2e/helpers.py). The figures
the tests measure are printed (pytest -s shows them).
"""

import base64
import datetime
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid

from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography import x509
from cryptography.x509 import oid
from glanceclient import exc as glance_exc
import memcache
import pytest

from glance_progress_store.read import reader as reader_mod
from glance_progress_store import records
from glance_progress_store import store as store_mod
from tests.e2e.helpers import check_failed_record
from tests.e2e.helpers import check_image
from tests.e2e.helpers import check_nothing_stored
from tests.e2e.helpers import log_text
from tests.e2e.helpers import new_image
from tests.e2e.helpers import open_raw_upload
from tests.e2e.helpers import POOL
from tests.e2e.helpers import QUOTA
from tests.e2e.helpers import QUOTA_POOL
from tests.e2e.helpers import RADOS_TIMEOUT
from tests.e2e.helpers import read_raw_response
from tests.e2e.helpers import read_record
from tests.e2e.helpers import reader
from tests.e2e.helpers import upload
from tests.e2e.helpers import Upload
from tests.e2e.helpers import wait_for_record
from tests import helpers
from tests.helpers import MiB
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

# testbed.GlanceAPI's rbd_store_chunk_size: the store writes 8 MiB chunks.
CHUNK = 8 * MiB
# The publisher retries a record with a backoff of at most 5 s.
RECORD_BACK_WITHIN = 15
# What a fault in memcached may add to an upload. The store waits at most
# progress_socket_timeout (0.5 s) for the final record; the rest is a
# margin for a shared two-core machine.
MEMCACHED_EXTRA_BOUND = 4.0
FROZEN_AFTER_UPLOAD = 2.0
GLANCE_500 = 'The server has either erred or is incapable'


@pytest.fixture
def image_pools(cluster):
    """``cleanup`` removes images from the fault stack's own Ceph."""
    return cluster, (POOL, QUOTA_POOL)


# -- 1. memcached down, killed or frozen -------------------------------

# frozen-then-restarted: a hung memcached that a watchdog kills and
# restarts; what was sent to the frozen process is lost with it.
MEMCACHED_FAULTS = ('down-from-start', 'killed-mid-upload',
                    'frozen-mid-upload', 'frozen-then-restarted')


@pytest.mark.parametrize('fault', MEMCACHED_FAULTS)
def test_memcached_fault_never_fails_an_upload(glance, cluster, live_mc,
                                               cleanup, fault):
    client = glance.client()
    data = helpers.payload(40 * MiB + 4321, seed=len(fault))
    error, baseline = upload(client, new_image(client, cleanup), data)
    assert error is None

    image_id = new_image(client, cleanup)
    if fault == 'down-from-start':
        live_mc.stop()
        error, elapsed = upload(client, image_id, data)
    else:
        job = Upload(client, image_id, data)
        job.start()
        seen = wait_for_record(live_mc, image_id,
                               lambda r: r.bytes >= CHUNK, timeout=60)
        (live_mc.kill if fault.startswith('killed') else live_mc.pause)()
        assert job.is_alive() and seen.bytes < len(data), 'fault too late'
        error, elapsed = job.result(timeout=300), job.elapsed
    assert error is None, error
    if fault.startswith('frozen'):
        # Frozen a while longer: the publisher's retries meet it too.
        time.sleep(FROZEN_AFTER_UPLOAD)
        if fault == 'frozen-then-restarted':
            live_mc.kill()
    restored = time.monotonic()
    live_mc.start()
    live_mc.resume()

    # The final record is written by the publisher's retries once
    # memcached answers again (well within progress_ttl, a day).
    record = helpers.wait_record(reader(live_mc), image_id,
                                 timeout=RECORD_BACK_WITHIN)
    print('memcached %s: upload %.2fs, baseline %.2fs, extra %.2fs; final '
          'record %.2fs after memcached came back'
          % (fault, elapsed, baseline, elapsed - baseline,
             time.monotonic() - restored))
    assert record is not None
    assert (record.state, record.bytes, record.total, record.reason) == (
        'stored', len(data), len(data), None)
    assert elapsed - baseline < MEMCACHED_EXTRA_BOUND
    check_image(glance, cluster, image_id, data)
    # The store warns once per upload, never per failed update.
    warnings = [line for line in log_text(glance).splitlines()
                if 'Could not publish upload progress of %s' % image_id
                in line]
    assert len(warnings) == 1, warnings


# -- 2. the pool's quota reached mid-upload ----------------------------

def test_pool_quota_reached_mid_upload(stacks, cluster, mc, cleanup):
    api = stacks.start('quota', pool=QUOTA_POOL)
    client = api.client()
    image_id = new_image(client, cleanup)
    size = 128 * MiB
    flagged = []

    def watch_pool():
        # Ceph enforces quotas lazily: the mon flags the pool full a few
        # seconds after the mgr reports usage over the quota, meanwhile
        # the upload goes on at 10 MiB/s.
        while job.is_alive():
            if cluster.pool_is_full(QUOTA_POOL):
                flagged.append(time.monotonic())
                return
            time.sleep(0.3)

    job = Upload(client, image_id, helpers.payload(size, seed=2), pace=0.1)
    job.start()
    watcher = threading.Thread(target=watch_pool, daemon=True)
    watcher.start()
    error = job.result(timeout=300)
    watcher.join()

    assert isinstance(error, glance_exc.HTTPOverLimit), error
    assert 'Image storage media is full' in str(error)
    assert 'over quota' in str(error)
    assert flagged, 'the pool was never flagged full during the upload'
    answer_after = job.ended_at - flagged[0]
    print('pool quota: 413 after %.2fs, %.2fs after the pool was flagged '
          'full (%s)' % (job.elapsed, answer_after, error))
    # Failing writes are seen at once; the cleanup then waits until the
    # pool is under quota again to remove the partial image.
    assert answer_after < 30
    check_nothing_stored(client, cluster, image_id, pool=QUOTA_POOL)
    assert cluster.images(QUOTA_POOL) == []
    record = check_failed_record(mc, image_id, 'storage_full', size)
    assert record.bytes >= QUOTA
    cluster.wait_pool_full(QUOTA_POOL, full=False)


# -- 3. Ceph stops answering mid-upload --------------------------------

def unstick(ceph):
    """Make sure every PG of the test bed serves I/O after a long SIGSTOP.

    A PG whose read lease ran out while the OSD was stopped (past about
    16 s) sometimes stays "laggy" after SIGCONT on this one-OSD Ceph 16
    cluster, every op on it "waiting for readable" for good (6 runs in
    19 here before this). Listing a pool reaches all its PGs; if that hangs,
    the OSD is marked down: it reports itself up at once and peers again,
    as after any restart. Returns True if it had to.
    """
    for pool in (POOL, QUOTA_POOL):
        try:
            ceph.rados('-p', pool, 'ls', timeout=10)
        except subprocess.TimeoutExpired:
            break
    else:
        return False
    ceph.ceph('osd', 'down', str(ceph.OSD_ID))
    wait_for('osd.%d up again' % ceph.OSD_ID, lambda: all(
        osd['up'] for osd in ceph.ceph_json('osd', 'dump')['osds']),
        timeout=60, interval=0.5)
    print('(test bed: PGs stuck laggy after SIGCONT, OSD re-peered)')
    return True


@pytest.fixture
def osd_pauser(cluster):
    """pause() SIGSTOPs the OSD; resume() SIGCONTs it and returns when
    every PG of the fault stack's pools answered again (a PG can stay
    "laggy" for a while after a long stop, longer on a busy machine): the
    moment Ceph is back. It runs and serves I/O again after the test,
    whatever happened."""
    class Pauser:
        paused = False

        def pause(self):
            cluster.pause_osd()
            self.paused = True

        def resume(self):
            if not self.paused:
                return None
            cluster.resume_osd()
            self.paused = False
            unstick(cluster)  # every PG listed: serving again
            return time.monotonic()

    pauser = Pauser()
    try:
        yield pauser
    finally:
        pauser.resume()
        cluster.wait_pool_io(POOL)


@pytest.mark.parametrize('osd_back', ['during-cleanup', 'after-cleanup'])
def test_ceph_stops_answering_mid_upload(glance, cluster, mc, osd_pauser,
                                         cleanup, osd_back):
    client = glance.client()
    data = helpers.payload(160 * MiB, seed=3)
    image_id = new_image(client, cleanup)
    body = helpers.Valve(data, limit=1)  # held in flight until the pause
    job = Upload(client, image_id, data, body=body)
    job.start()
    try:
        source = reader(mc)
        body.step_until('a chunk in Ceph', lambda: (lambda r: (
            r is not None and r.bytes >= CHUNK))(source.get(image_id)),
            CHUNK)
        osd_pauser.pause()
    finally:
        body.open()
    paused_at = time.monotonic()
    aborted = 'Failed to store image %s' % image_id
    orphan = 'Could not remove the partial RBD image %s/%s' % (POOL, image_id)

    if osd_back == 'during-cleanup':
        # The store gives up on the writes after rados_connect_timeout,
        # closing the image costs librbd a few more timeouts, then the
        # store logs the failure and retries the removal for up to
        # CLEANUP_TIMEOUT: the OSD comes back in that window.
        wait_for('abort in the log', lambda: aborted in log_text(glance),
                 timeout=12 * RADOS_TIMEOUT)
        abort_after = time.monotonic() - paused_at
        resumed_at = osd_pauser.resume()
        error = job.result(timeout=store_mod.CLEANUP_TIMEOUT + 60)
        print('ceph paused, back during cleanup: store gave up %.1fs after '
              'the pause, client got %s %.1fs after the OSD came back'
              % (abort_after, type(error).__name__,
                 job.ended_at - resumed_at))
        assert abort_after < 8 * RADOS_TIMEOUT
        assert job.ended_at - resumed_at < 2 * RADOS_TIMEOUT + 10
        assert not helpers.rbd_exists(cluster, POOL, image_id)
        assert orphan not in log_text(glance)
    else:
        # The OSD stays away past the cleanup window: the store stops
        # trying, says so in the log and the client gets its error.
        error = job.result(timeout=store_mod.CLEANUP_TIMEOUT +
                           12 * RADOS_TIMEOUT + 60)
        failed_after = job.ended_at - paused_at
        resumed_at = osd_pauser.resume()
        print('ceph paused for good: client got %s %.1fs after the pause '
              '(rados_connect_timeout %ds, cleanup window %ds)'
              % (type(error).__name__, failed_after, RADOS_TIMEOUT,
                 store_mod.CLEANUP_TIMEOUT))
        assert failed_after < (store_mod.CLEANUP_TIMEOUT +
                               10 * RADOS_TIMEOUT + 15)
        # What is left: the partial image, reported for "rbd rm".
        text = log_text(glance)
        assert orphan in text and 'remove it with "rbd rm"' in text
        assert helpers.rbd_exists(cluster, POOL, image_id)

    # Glance answers 500 (it has no mapping for BackendException); the
    # reason is in its log and in the record.
    assert isinstance(error, glance_exc.HTTPInternalServerError), error
    assert GLANCE_500 in str(error)
    assert 'Ceph did not answer in time' in log_text(glance)
    assert client.images.get(image_id)['status'] == 'queued'
    check_failed_record(mc, image_id, 'storage_timeout', len(data))

    retry = data[:2 * CHUNK]
    if osd_back == 'after-cleanup':
        # Until an operator removes the leftover, the id cannot be
        # uploaded again: the store refuses to touch an existing image.
        error, _ = upload(client, image_id, retry)
        assert isinstance(error, glance_exc.HTTPInternalServerError), error
        assert 'RBD image %s already exists' % image_id in log_text(glance)
        # The leftover may still carry the exclusive lock (Ceph's default
        # rbd_default_features) and the watch of glance's closed Ceph
        # session: usually gone once the OSD has read that session's last
        # requests, else until the OSD expires the watch
        # (osd_client_watch_timeout, 30 s). "rbd rm" waits for it.
        spec = '%s/%s' % (POOL, image_id)
        wait_for('release of the stale watch',
                 lambda: 'watcher=' not in cluster.rbd('status', spec),
                 timeout=120, interval=1)
        print('leftover %s unlocked %.1fs after the OSD came back'
              % (spec, time.monotonic() - resumed_at))
        helpers.remove_image(cluster, POOL, image_id)
    error, _ = upload(client, image_id, retry)
    assert error is None, error
    check_image(glance, cluster, image_id, retry)


# -- 4. the client goes away mid-upload --------------------------------

def test_client_disconnects_mid_upload(glance, cluster, mc, cleanup):
    client = glance.client()
    image_id = new_image(client, cleanup)
    size = 64 * MiB
    sock = open_raw_upload(glance, image_id, size)
    data = helpers.payload(size - CHUNK, seed=4)
    sent = []  # a chunk at a time until one is in Ceph

    def send_a_chunk():
        if len(sent) * CHUNK < len(data):
            sock.sendall(data[len(sent) * CHUNK:(len(sent) + 1) * CHUNK])
            sent.append(CHUNK)
    source = reader(mc)
    helpers.step_until('a chunk in Ceph', lambda: (lambda r: (
        r is not None and r.bytes >= CHUNK))(source.get(image_id)),
        send_a_chunk)
    sock.close()
    closed_at = time.monotonic()

    record = check_failed_record(mc, image_id, 'source_error', size)
    noticed = time.monotonic() - closed_at
    wait_for('image back to queued',
             lambda: client.images.get(image_id)['status'] == 'queued', 30)
    check_nothing_stored(client, cluster, image_id)
    print('client gone after %d bytes stored: record failed (%s) %.2fs later'
          % (record.bytes, record.reason, noticed))
    assert noticed < 15


# -- 5. a body shorter or longer than declared -------------------------

# What is possible through glance-api under uWSGI:
#  * The declared size of an upload is the x-openstack-image-size header
#    (python-glanceclient sends it with image_size=, with a chunked body),
#    else the Content-Length. The image's "size" cannot be declared at
#    create time: it is read-only (test_size_is_read_only_at_create).
#  * Chunked body with x-openstack-image-size: glance passes the declared
#    size to the store, which compares it with the body: 400 from
#    glance_store.Invalid, "Size mismatch" or "Size exceeds".
#  * Content-Length, shorter body (the client stops sending, half-closes):
#    uWSGI fails the read of wsgi.input ("error during read"), an OSError
#    that glance has no mapping for: 500. The store records source_error.
#  * Content-Length, longer body: uWSGI reads exactly Content-Length bytes
#    and never looks at the rest, so glance stores the declared bytes and
#    answers 204; HTTP framing makes the extra bytes a different message.
#  * An import (glance-direct) stores what was staged with the size glance
#    measured while staging: the client has no size to lie about there.

SIZE_LIES = ('chunked-shorter', 'chunked-longer', 'content-length-shorter',
             'content-length-longer')


@pytest.mark.parametrize('lie', SIZE_LIES)
def test_body_size_differs_from_declared(glance, cluster, mc, cleanup, lie):
    client = glance.client()
    image_id = new_image(client, cleanup)
    data = helpers.payload(2 * CHUNK + 777, seed=5)
    if lie.startswith('chunked'):
        declared = len(data) + (1 if lie == 'chunked-shorter' else -1)
        error, elapsed = upload(client, image_id, data, image_size=declared)
        print('%s: %s in %.2fs' % (lie, error, elapsed))
        assert isinstance(error, glance_exc.HTTPBadRequest), error
        assert ('Size mismatch' if lie == 'chunked-shorter'
                else 'Size exceeds') in str(error)
        check_nothing_stored(client, cluster, image_id)
        check_failed_record(mc, image_id, 'size_mismatch', declared)
        return

    started = time.monotonic()
    sock = open_raw_upload(glance, image_id, len(data))
    with sock:
        if lie == 'content-length-shorter':
            sock.sendall(data[:CHUNK + 1])
            sock.shutdown(socket.SHUT_WR)
        else:
            sock.sendall(data + b'\0' * 65536)
        status, body = read_raw_response(sock)
    print('%s: HTTP %d in %.2fs' % (lie, status, time.monotonic() - started))
    if lie == 'content-length-shorter':
        assert status == 500 and GLANCE_500 in body, (status, body)
        assert 'error during read' in log_text(glance)
        check_nothing_stored(client, cluster, image_id)
        check_failed_record(mc, image_id, 'source_error', len(data))
    else:
        assert status == 204, (status, body)
        check_image(glance, cluster, image_id, data)
        record = read_record(mc, image_id)
        assert (record.state, record.bytes) == ('stored', len(data))


def test_size_is_read_only_at_create(glance):
    with pytest.raises(glance_exc.HTTPForbidden) as info:
        glance.client().images.create(name='faults-size', disk_format='raw',
                                      container_format='bare', size=1)
    assert "Attribute 'size' is read-only" in str(info.value).replace(
        '&#x27;', "'")


# -- 6. image signatures -----------------------------------------------

def test_signature_without_key_manager(glance, cluster, mc, cleanup):
    # Glance fetches the signing certificate from castellan before it calls
    # the store; with no reachable Barbican it refuses the upload there.
    client = glance.client()
    image_id = new_image(
        client, cleanup, img_signature=base64.b64encode(b'\1' * 256).decode(),
        img_signature_hash_method='SHA-256', img_signature_key_type='RSA-PSS',
        img_signature_certificate_uuid=str(uuid.uuid4()))
    error, elapsed = upload(client, image_id, helpers.payload(CHUNK, seed=6))
    assert isinstance(error, glance_exc.HTTPBadRequest), error
    assert 'Unable to retrieve certificate' in str(error)
    check_nothing_stored(client, cluster, image_id)
    assert read_record(mc, image_id) is None  # the store was never called
    print('signature, no key manager: %s in %.2fs' % (error, elapsed))


# castellan loads a key manager by class path when it is not one of its
# drivers (barbican, vault): this one serves X.509 certificates from
# files, so that glance really verifies signatures here.
KEY_MANAGER = '''\
import os

from castellan.common import exception
from castellan.common.objects import x_509
from castellan.key_manager import not_implemented_key_manager


class FileKeyManager(not_implemented_key_manager.NotImplementedKeyManager):
    def get(self, context, managed_object_id, metadata_only=False):
        path = os.path.join(os.path.dirname(__file__),
                            os.path.basename(managed_object_id) + '.der')
        try:
            with open(path, 'rb') as f:
                return x_509.X509(f.read())
        except FileNotFoundError:
            raise exception.ManagedObjectNotFoundError(uuid=managed_object_id)
'''


def _signing_key_manager(directory):
    """Write the key manager, a certificate for it and an interpreter
    that can import it; returns (python, private key, certificate id)."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, 'gps_file_key_manager.py'), 'w') as f:
        f.write(KEY_MANAGER)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(oid.NameOID.COMMON_NAME, 'faults')])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = x509.CertificateBuilder().subject_name(name).issuer_name(
        name).public_key(key.public_key()).serial_number(
        x509.random_serial_number()).not_valid_before(
        now - datetime.timedelta(days=1)).not_valid_after(
        now + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
    certificate_id = str(uuid.uuid4())
    with open(os.path.join(directory, certificate_id + '.der'), 'wb') as f:
        f.write(certificate.public_bytes(serialization.Encoding.DER))
    python = os.path.join(directory, 'python')
    with open(python, 'w') as f:
        f.write('#!/bin/sh\nPYTHONPATH=%s exec %s "$@"\n'
                % (directory, sys.executable))
    os.chmod(python, os.stat(python).st_mode | stat.S_IXUSR)
    return python, key, certificate_id


def _sign(key, data):
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                      salt_length=padding.PSS.MAX_LENGTH)
    return base64.b64encode(key.sign(data, pss, hashes.SHA256())).decode()


def test_bad_signature(stacks, root, cluster, mc, cleanup):
    python, key, certificate_id = _signing_key_manager(
        os.path.join(root, 'key-manager'))
    api = stacks.start('signing', python=python, extra_conf={
        'key_manager': {'backend': 'gps_file_key_manager.FileKeyManager'}})
    client = api.client()
    data = helpers.payload(2 * CHUNK + 99, seed=7)

    def signed_image(signature):
        return new_image(
            client, cleanup, img_signature=signature,
            img_signature_hash_method='SHA-256',
            img_signature_key_type='RSA-PSS',
            img_signature_certificate_uuid=certificate_id)

    # The right signature: the store feeds glance's verifier, glance
    # verifies it once add() returned.
    good = signed_image(_sign(key, data))
    error, _ = upload(client, good, data)
    assert error is None, error
    check_image(api, cluster, good, data)

    bad = signed_image(_sign(key, data + b'tampered'))
    error, elapsed = upload(client, bad, data)
    assert isinstance(error, glance_exc.HTTPBadRequest), error
    assert 'Signature verification failed' in str(error)
    # Glance deleted the image through the store before answering.
    check_nothing_stored(client, cluster, bad)
    # The verdict comes from glance after the store finished, so the
    # record says the data was stored: cursive's verifier never fails in
    # update(), the only step the store sees ("verifier_failed" is for
    # verifiers that do).
    record = read_record(mc, bad)
    assert (record.state, record.bytes) == ('stored', len(data))
    print('bad signature: %s in %.2fs; record %s' % (error, elapsed,
                                                     record.state))


# -- 7. an RBD image with the image's id already exists ----------------

def test_existing_rbd_image_is_left_untouched(glance, cluster, mc, cleanup,
                                              tmp_path):
    client = glance.client()
    image_id = new_image(client, cleanup)
    existing = helpers.payload(4 * MiB, seed=8)
    path = tmp_path / 'existing.raw'
    path.write_bytes(existing)
    cluster.rbd('import', '--no-progress', str(path),
                '%s/%s' % (POOL, image_id))
    now = time.time()
    record = records.ProgressRecord(
        state='stored', bytes=len(existing), total=len(existing),
        backend=None, started_at=now - 60, updated_at=now - 30)
    assert memcache.Client([mc.address]).set_multi(
        records.key_values(records.keys_for(image_id), record),
        time=600) == []
    sizes = helpers.raw_sizes(reader_mod.ProgressReader([mc.address]),
                              image_id)

    error, elapsed = upload(client, image_id, helpers.payload(CHUNK, seed=9))
    print('existing RBD image: %s in %.2fs' % (error, elapsed))
    # glance_store.Duplicate has no mapping in glance's upload: 500.
    assert isinstance(error, glance_exc.HTTPInternalServerError), error
    assert 'RBD image %s already exists' % image_id in log_text(glance)
    assert client.images.get(image_id)['status'] == 'queued'
    assert helpers.read_rbd(cluster, POOL, image_id) == (existing, {})
    assert read_record(mc, image_id) == record
    assert helpers.raw_sizes(reader_mod.ProgressReader([mc.address]),
                             image_id) == sizes


# -- 8. a bad configuration --------------------------------------------

BAD_OPTIONS = {
    'progress_ttl': -1,
    # servers separated by spaces, not commas: one unparseable entry
    'progress_memcached_servers': '127.0.0.1:11211 127.0.0.1:11212',
    'progress_key_prefix': 'has space',
}


@pytest.mark.parametrize('option', sorted(BAD_OPTIONS))
def test_bad_configuration_disables_uploads(stacks, cluster, mc, cleanup,
                                            option):
    # glance-api starts (start() waits until it answers) ...
    api = stacks.start('bad-%s' % option.replace('_', '-'),
                       store={option: BAD_OPTIONS[option]})
    try:
        configured = [line for line in log_text(api).splitlines()
                      if 'Failed to configure store correctly' in line]
        assert configured and 'invalid value for %s' % option in (
            configured[0]), configured
        client = api.client()
        image_id = new_image(client, cleanup)
        before = cluster.images(POOL)
        # ... and refuses uploads to the store, saying why.
        error, elapsed = upload(client, image_id,
                                helpers.payload(CHUNK, seed=10))
        print('bad %s: %s in %.2fs' % (option, error, elapsed))
        assert isinstance(error, glance_exc.HTTPException), error
        assert 'HTTP 410 Gone' in str(error)  # glanceclient has no 410 class
        assert 'Adding images to store is disabled' in str(error)
        assert client.images.get(image_id)['status'] == 'queued'
        assert cluster.images(POOL) == before
        assert read_record(mc, image_id) is None
    finally:
        api.stop()


# -- 9. nothing secret in the logs -------------------------------------

def test_logs_hold_no_secret_and_no_record(stacks, glance, cluster, live_mc,
                                           cleanup):
    # Run the store's warning and error paths here too, so that this test
    # means something when it runs alone.
    client = glance.client()
    data = helpers.payload(CHUNK + 1, seed=11)
    live_mc.stop()
    error, _ = upload(client, new_image(client, cleanup), data)
    assert error is None, error
    live_mc.start()
    error, _ = upload(client, new_image(client, cleanup), data,
                      image_size=len(data) + 1)
    assert isinstance(error, glance_exc.HTTPBadRequest), error

    with open(cluster.admin_keyring) as f:
        secret = [line.split('=', 1)[1].strip() for line in f
                  if line.strip().startswith('key')][0]
    assert len(secret) > 20
    logs = {api.log_path: log_text(api) for api in stacks.started}
    everything = '\n'.join(logs.values())
    assert 'Could not publish upload progress' in everything
    assert 'Failed to store image' in everything
    for path, text in logs.items():
        assert secret not in text, path
        # Sizes and states may be logged, never a record's JSON body.
        for line in text.splitlines():
            assert '"started_at"' not in line, (path, line)
            assert records.STATUS_SUFFIX not in line, (path, line)
