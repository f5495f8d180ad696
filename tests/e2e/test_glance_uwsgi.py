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

"""glance-api run with glance's own uWSGI settings.

glance ships ``httpd/glance-api-uwsgi.ini``: 4 processes of one thread,
``lazy-apps``, ``enable-threads``, ``socket-timeout = 10``, an
``http-socket`` (testbed.glance_api.GLANCE_UWSGI_INI, only the address
made local). The other modules run the test bed's settings; here the
endpoint, the Horizon column and an upload run on glance's, with a real
Keystone, and a frozen memcached meets six pollers.
"""

import math
import os
import re
import subprocess
import sys

from glanceclient import exc
import pytest
import requests

import testbed
from testbed.figures import percentile

from tests.e2e.helpers import CHUNK
from tests.e2e.helpers import frozen_memcached_load
from tests.e2e.helpers import GlanceIniValve
from tests.e2e.helpers import log_text
from tests.e2e.helpers import Uploader
# Horizon's fixtures and helpers, on this module's glance (their
# glance_keystone is the one below): one copy of how Horizon is driven.
from tests.e2e.test_horizon import horizon  # noqa: F401
from tests.e2e.test_horizon import new_image
from tests.e2e.test_horizon import page  # noqa: F401
from tests.e2e.test_horizon import SIZE
from tests import helpers
from tests.helpers import MiB
from tests.helpers import wait_for as until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures('dashboard_leg_cost')]

HEADER = 'OpenStack-Upload-Progress'
# [upload_progress] memcached_socket_timeout here: far above what any
# answer of glance takes, so that an answer that waited for the frozen
# memcached is told apart from one that did not, on a busy machine.
SOCKET_TIMEOUT = 5.0
POLLERS = 6
LOAD_SECONDS = 20.0
# Debian's uWSGI (12: 2.0.21), for a uWSGI that runs no Python threads
# unless told to; from 2.0.27 on uWSGI enables them by default.
DEBIAN_UWSGI = '/usr/bin/uwsgi-core'
THREADS_BY_DEFAULT = (2, 0, 27)
NO_THREADS_WARNING = 'uWSGI runs this glance-api without Python threads'


@pytest.fixture(scope='module')
def keystone(workdir):
    """This module's own Keystone: its catalog's image service is the
    glance below, and no other module's."""
    with testbed.Keystone(os.path.join(workdir, 'uwsgi-keystone')) as ks:
        yield ks


@pytest.fixture(scope='module')
def glance_keystone(ceph, memcached, workdir, keystone):
    """glance-api 33 under glance's own uWSGI settings, the stock
    keystone flavor of etc/glance-api-paste.ini: the catalog's image
    service."""
    api = testbed.GlanceAPI(
        os.path.join(workdir, 'uwsgi-glance'), ceph, memcached.address,
        mode='single', keystone=keystone, uwsgi='glance',
        extra_conf={'upload_progress': {
            'memcached_socket_timeout': SOCKET_TIMEOUT}})
    keystone.set_image_service(api.url)
    with api:
        yield api


def test_an_upload_on_the_endpoint_and_in_horizon_s_column(
        horizon, keystone, glance_keystone, page,  # noqa: F811
        glance_cleanup):
    image = new_image(glance_keystone, 'alice', glance_cleanup)
    url = '%s/v2/images/%s/progress' % (glance_keystone.url, image['id'])
    token = glance_keystone.headers('alice')
    seen = []

    def uploading_counts():
        response = requests.get(url, headers=token, timeout=30)
        assert response.status_code == 200, response.text
        assert response.headers[HEADER] == '1'
        body = response.json()
        if body['state'] == 'uploading':
            seen.append(body)
        return {b['bytes'] for b in seen}

    gate = GlanceIniValve(b'\xa5' * SIZE)
    upload = Uploader(glance_keystone.client('alice'), image['id'], gate, SIZE)
    page.login('alice', keystone)
    page.open('project/images/')
    page.progress_column(timeout=60)
    with upload:
        # the endpoint, from whichever of the 4 processes answers, shows
        # the bytes of the process that stores
        gate.step_until('a first byte count', lambda: uploading_counts(),
                        CHUNK)
        first = max(b['bytes'] for b in seen)
        gate.step_until('more bytes', lambda: max(uploading_counts()) >
                        first, CHUNK)
        assert all(b['total'] == SIZE and b['image_status'] == 'saving'
                   for b in seen)
        row = until('a bar', lambda: (lambda r: r and r['valuenow'] and r)(
            page.row(image['name'])), 90)
        assert 0 < row['valuenow'] < 100 and ' of 64.0 MiB' in row[
            'progress'], row
        assert upload.finish() is None
    done = until('the row to turn Active', lambda: (
        lambda r: r and 'Active' in r['cells'] and r)(
            page.row(image['name'])), 60)
    assert done['valuenow'] is None
    body = requests.get(url, headers=token, timeout=30).json()
    assert (body['state'], body['bytes'], body['image_status']) == (
        'stored', SIZE, 'active')
    page.assert_no_errors()


def test_a_frozen_memcached_and_pollers_do_not_hold_glance(
        glance_keystone, memcached, glance_cleanup):
    """Six pollers on the endpoint while memcached is frozen: only the
    probes of the server wait the socket timeout (each answer that took
    it is one); the others are a 503 at once, and the image list keeps
    its speed. Without a breaker every answer waits, and 6 pollers keep
    glance's 4 processes busy: the list waits behind them."""
    image = new_image(glance_keystone, 'alice', glance_cleanup)
    headers = glance_keystone.headers('alice')
    baseline, loaded, answers = frozen_memcached_load(
        glance_keystone, memcached, image['id'], headers, pollers=POLLERS,
        seconds=LOAD_SECONDS)
    waited = [a for a in answers if a[0] >= SOCKET_TIMEOUT]
    fast = [a for a in answers if a[0] < SOCKET_TIMEOUT]
    figures = ('%d progress answers, %d waited >= %.0f s; list p50/p90 '
               '%.3f/%.3f s without pollers, %.3f/%.3f s with' % (
                   len(answers), len(waited), SOCKET_TIMEOUT,
                   percentile(baseline, 0.5), percentile(baseline, 0.9),
                   percentile(loaded, 0.5), percentile(loaded, 0.9)))
    print(figures)
    assert {status for _, status, _ in answers} == {503}, answers
    # each process probes once, then once per Retry-After at most
    retry_after = min((float(r) for _, _, r in fast if r), default=None)
    assert retry_after is not None, figures  # a fast 503 says when
    probes = glance_keystone.workers * (
        1 + math.ceil(LOAD_SECONDS / max(retry_after, 1.0)))
    assert len(waited) <= probes, figures
    assert len(fast) >= 2 * len(waited), figures
    # the same machine, the same run: a generous ratio, far below what
    # one wait for the socket timeout adds
    assert percentile(loaded, 0.5) <= 3 * percentile(baseline, 0.5) + 0.2, \
        figures
    assert percentile(loaded, 0.9) <= 3 * percentile(baseline, 0.9) + 1.0, \
        figures
    # and memcached answers again: the endpoint recovers by itself
    assert until('the endpoint to answer 200 again', lambda: (
        requests.get('%s/v2/images/%s/progress' % (
            glance_keystone.url, image['id']), headers=headers,
            timeout=30).status_code == 200), 120)


def _uwsgi_version(server):
    """(2, 0, 21) for Debian 12's uWSGI; pyuwsgi's when ``server`` is
    None."""
    if server is None:
        from importlib import metadata
        text = metadata.version('pyuwsgi')
    else:
        text = subprocess.run([server, '--version'], capture_output=True,
                              text=True, check=True).stdout
    return tuple(int(n) for n in re.findall(r'\d+', text)[:3])


@pytest.mark.parametrize('server', [None, DEBIAN_UWSGI],
                         ids=['pyuwsgi', 'debian-uwsgi'])
def test_without_enable_threads_the_store_warns_if_uwsgi_runs_no_threads(
        ceph, memcached, workdir, server):
    """glance-api's uWSGI configuration without ``enable-threads``: the
    store warns, once, exactly when uWSGI itself says Python threads are
    disabled (a uWSGI before 2.0.27); a newer one runs them anyway."""
    if server is not None:
        testbed.ensure_packages(('uwsgi-core', 'uwsgi-plugin-python3'),
                                takes='under a minute')
        plugin = '/usr/lib/uwsgi/plugins/python%d%d_plugin.so' % (
            sys.version_info[:2])
        if not os.path.exists(plugin):
            pytest.skip('Debian\'s uWSGI has no plugin for this venv\'s '
                        'Python (%s)' % plugin)
    no_threads = _uwsgi_version(server) < THREADS_BY_DEFAULT
    name = 'no-threads-%s' % ('pyuwsgi' if server is None else 'debian')
    # the test bed's settings: the application is loaded (and the store
    # configured) once, in the master
    with testbed.GlanceAPI(
            os.path.join(workdir, name), ceph, memcached.address,
            mode='single', uwsgi_without=('enable-threads',),
            uwsgi_server=server) as api:
        log = log_text(api)
    uwsgi_says = 'Python threads support is disabled' in log
    assert uwsgi_says == no_threads, log[-3000:]
    assert log.count(NO_THREADS_WARNING) == (1 if no_threads else 0), \
        log[-3000:]


def test_glance_s_ini_refuses_python_glanceclient_s_1_mib_chunks(
        glance_keystone, glance_cleanup):
    """What the install guide says of glance's own ini: uWSGI's default
    chunked-input-limit (1 MiB) refuses the 1 MiB chunks python-
    glanceclient sends, whatever the store; a chunk just under passes."""
    client = glance_keystone.client('alice')
    data = helpers.payload(2 * MiB)
    refused = new_image(glance_keystone, 'alice', glance_cleanup)
    with pytest.raises(exc.HTTPInternalServerError):
        client.images.upload(refused['id'], helpers.SlowReader(data),
                             image_size=len(data))
    assert 'unable to receive chunked part' in log_text(glance_keystone)
    accepted = new_image(glance_keystone, 'alice', glance_cleanup)
    client.images.upload(accepted['id'], helpers.SlowReader(
        data, read_size=MiB - 64), image_size=len(data))
    assert client.images.get(accepted['id'])['status'] == 'active'
