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

"""Session fixtures: a real one-node Ceph cluster and a real memcached.

Both are started once per test session by tools/testbed on loopback,
only when a test asks for them (tests/unit never does), and stopped at
the end; tests delete what they create so the memstore OSD never fills up.
"""

import os
import pathlib
import sys
import tempfile
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'tools'))

import testbed  # noqa: E402

from tests import helpers  # noqa: E402


@pytest.fixture(autouse=True)
def no_host_config(monkeypatch, tmp_path):
    """The host's /etc/glance must not leak into the tests."""
    from glance_progress_store.read import sources
    monkeypatch.setattr(sources, 'DEFAULT_CONFIG_FILE',
                        str(tmp_path / 'absent' / 'glance-api.conf'))
    monkeypatch.setattr(sources, 'DEFAULT_CONFIG_DIR',
                        str(tmp_path / 'absent' / 'glance-api.conf.d'))


@pytest.fixture(scope='module')
def say(request):
    """Print past pytest's capture: what each step cost."""
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin('terminalreporter')
    capture = plugins.get_plugin('capturemanager')

    def write(text):
        if reporter is None or capture is None:
            print(text, file=sys.stderr)
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(text)
    return write


@pytest.fixture(scope='session')
def workdir():
    with tempfile.TemporaryDirectory(prefix='gps-tests-') as path:
        yield path


@pytest.fixture(scope='session')
def ceph(workdir):
    with testbed.CephCluster(os.path.join(workdir, 'ceph')) as cluster:
        for pool in (helpers.POOL, helpers.POOL2):
            cluster.create_pool(pool)
        yield cluster


@pytest.fixture(scope='session')
def memcached():
    # room for the 200,000 foreign keys of the discovery tests
    with testbed.Memcached(memory_mb=256) as server:
        yield server


@pytest.fixture(scope='session')
def rabbitmq(workdir):
    """A private RabbitMQ node (testbed.RabbitMQ), once per session: about
    10 s to start."""
    with testbed.RabbitMQ(os.path.join(workdir, 'rabbitmq')) as node:
        yield node


@pytest.fixture
def live_rabbitmq(rabbitmq):
    """The session's RabbitMQ, running and thawed after the test, whatever
    the test did to it (stopped, frozen)."""
    yield rabbitmq
    rabbitmq.start()  # no-op when it runs
    rabbitmq.thaw()


@pytest.fixture
def live_memcached(memcached):
    """The session's memcached, brought back up if a test stopped it."""
    with helpers.kept_running(memcached) as server:
        yield server


@pytest.fixture
def image_pools(ceph):
    """Where ``cleanup`` removes images: (cluster, pools). The session's
    Ceph here; a module whose images live elsewhere overrides it."""
    return ceph, (helpers.POOL, helpers.POOL2)


@pytest.fixture
def cleanup(image_pools):
    """Image ids (RBD image names) to remove after the test, whatever
    happened: the tests' one "delete afterwards" fixture."""
    names = []
    yield names
    cluster, pools = image_pools
    helpers.remove_images(cluster, pools, names)


@pytest.fixture
def image_id(cleanup):
    """A fresh image id; its RBD image is removed after the test."""
    image = str(uuid.uuid4())
    cleanup.append(image)
    return image


@pytest.fixture
def single_store(ceph, live_memcached):
    """A progress_rbd store loaded the way glance loads ``stores = ...``."""
    with helpers.single_store_conf(ceph, live_memcached) as make:
        yield make


@pytest.fixture
def multi_store(ceph, live_memcached):
    """Two progress_rbd backends on two pools, as ``enabled_backends``."""
    with helpers.multi_store_conf(ceph, live_memcached) as make:
        yield make


@pytest.fixture
def reader(live_memcached):
    from glance_progress_store.read import reader
    return reader.ProgressReader([live_memcached.address])
