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

"""Real glance-apis (uWSGI) on the session's Ceph and memcached, and the
fault tests' own stack.

The same code (tools/testbed) runs the demo; here glance is configured
with progress_rbd exactly as in etc/glance-api.conf.snippet and driven
with python-glanceclient, as operators drive it. The session's glance-apis
have the upload_progress filter in their pipeline, so every e2e test also
shows that it changes nothing else.
"""

import functools
import http.server
import os
import threading
import time

import pytest

import testbed

from tests.e2e.helpers import POOL
from tests.e2e.helpers import QUOTA
from tests.e2e.helpers import QUOTA_POOL
from tests.e2e.helpers import RADOS_TIMEOUT
from tests import helpers

# Small enough for a test to exceed it; larger than every other upload here.
IMAGE_SIZE_CAP = 64 * helpers.MiB


@pytest.fixture(scope='session')
def glance_single(ceph, memcached, workdir):
    with testbed.GlanceAPI(
            os.path.join(workdir, 'glance-single'), ceph, memcached.address,
            mode='single', progress_filter=True,
            extra_conf={'DEFAULT': {'image_size_cap': IMAGE_SIZE_CAP}}) as api:
        yield api


@pytest.fixture(scope='session')
def glance_multi(ceph, memcached, workdir):
    with testbed.GlanceAPI(
            os.path.join(workdir, 'glance-multi'), ceph, memcached.address,
            mode='multi', backends=helpers.BACKENDS,
            progress_filter=True) as api:
        yield api


# -- Keystone: real tokens through keystonemiddleware's authtoken --------

@pytest.fixture(scope='session')
def keystone(workdir):
    """A real Keystone (testbed.Keystone): admin, alice (member of alpha),
    bob (member of beta) and glance's service user."""
    with testbed.Keystone(os.path.join(workdir, 'keystone')) as server:
        yield server


@pytest.fixture(scope='session')
def clouds_yaml(keystone, glance_keystone):
    """A clouds.yaml with the clouds admin, alice and bob; the catalog's
    image endpoints (public, internal) are glance_keystone's."""
    return keystone.clouds_yaml()


def _keystone_glance(workdir, name, ceph, memcached, keystone, **kwargs):
    return testbed.GlanceAPI(
        os.path.join(workdir, name), ceph, memcached.address,
        mode='single', keystone=keystone,
        extra_conf={'DEFAULT': {'image_size_cap': IMAGE_SIZE_CAP}}, **kwargs)


@pytest.fixture(scope='session')
def glance_keystone(ceph, memcached, workdir, keystone):
    """glance-api in the stock keystone flavor of etc/glance-api-paste.ini
    (authtoken, context, upload_progress), single store; it is the image
    service of keystone's catalog."""
    api = _keystone_glance(workdir, 'glance-keystone', ceph, memcached,
                           keystone)
    keystone.set_image_service(api.url)
    with api:
        yield api


@pytest.fixture(scope='session')
def glance_keystone_node2(ceph, memcached, workdir, keystone,
                          glance_keystone):
    """A second glance-api node of glance_keystone: its own uWSGI, the same
    Keystone, memcached, Ceph and glance database."""
    with _keystone_glance(workdir, 'glance-keystone-node2', ceph, memcached,
                          keystone, shared_with=glance_keystone) as api:
        yield api


@pytest.fixture(scope='session')
def web_server(workdir):
    """Serves files from a directory on 127.0.0.1, for web-download."""
    root = os.path.join(workdir, 'www')
    os.makedirs(root, exist_ok=True)
    handler = functools.partial(_QuietHandler, directory=root)
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.root = root
    server.url = 'http://127.0.0.1:%d' % server.server_address[1]
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


# -- the fault tests' own Ceph, memcached and glance-api stacks ---------
# The faults would disturb the session's fixtures (test_faults_glance.py).

@pytest.fixture(scope='module')
def faults_stack(workdir):
    """Ceph with a mgr (pool quotas need one), memcached, the pools; the
    glance-apis added by ``stacks`` stop with it, first."""
    with testbed.LocalStack(os.path.join(workdir, 'faults-glance'),
                            pools=(POOL, QUOTA_POOL), with_mgr=True) as local:
        local.ceph.set_pool_quota(QUOTA_POOL, QUOTA)
        yield local


@pytest.fixture(scope='module')
def root(faults_stack):
    return faults_stack.workdir


@pytest.fixture(scope='module')
def cluster(faults_stack):
    return faults_stack.ceph


@pytest.fixture(scope='module')
def mc(faults_stack):
    return faults_stack.memcached


@pytest.fixture
def live_mc(mc):
    """The module's memcached, running and answering after the test."""
    with helpers.kept_running(mc) as server:
        yield server


class Stacks:
    """Starts the fault tests' glance-apis into their LocalStack."""

    def __init__(self, local):
        self.local = local

    @property
    def started(self):
        """Every glance-api started, including one that failed to."""
        return self.local.apis

    def start(self, name, pool=POOL, store=None, extra_conf=None,
              **kwargs):
        """A single-store glance-api into `pool`; `store` adds options to
        [glance_store], `extra_conf` other sections."""
        conf = dict(extra_conf or {})
        conf['glance_store'] = dict(rados_connect_timeout=RADOS_TIMEOUT,
                                    **(store or {}))
        return self.local.add_glance(
            name, mode='single', backends={'default': pool}, workers=1,
            extra_conf=conf, **kwargs)


@pytest.fixture(scope='module')
def stacks(faults_stack):
    return Stacks(faults_stack)


@pytest.fixture(scope='module')
def glance(stacks):
    """The main stack. castellan keeps its default backend, Barbican, which
    is pointed at a port nothing listens on: a cloud without Barbican."""
    return stacks.start('main', extra_conf={'barbican': {
        'auth_endpoint': 'http://127.0.0.1:%d/v3' % testbed.free_port()}})


@pytest.fixture
def glance_cleanup(ceph, glance_keystone):
    """Images the test created through glance: deleted through glance,
    and their RBD images, at the end (the glance_keystone of the test's
    module: the browser tests' modules have their own)."""
    created = []
    yield created
    client = glance_keystone.client('admin')
    for image_id in created:
        try:
            client.images.delete(image_id)
        except Exception:
            pass
        helpers.remove_image(ceph, helpers.POOL, image_id)


@pytest.fixture(scope='module')
def dashboard_leg_cost(request):
    """Say what a dashboard's test module (Horizon's, Skyline's) cost, in
    the run's output."""
    started = time.monotonic()
    yield
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin('terminalreporter')
    capture = plugins.get_plugin('capturemanager')
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line('\nDashboard tests: %s took %.0f s' % (
                request.module.__name__.rsplit('.', 1)[-1],
                time.monotonic() - started))
