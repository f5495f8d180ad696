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

"""``openstack image progress``: the real ``openstack`` CLI, run as a user
runs it, against the session's glance-apis (no Keystone).

Every run takes its authentication as arguments and environment
(:func:`noauth`), so a clouds.yaml or Keystone variant only adds another
such pair.
"""

import json
import os
import re
import subprocess
import time
import uuid

import pytest
import requests

import testbed

from glance_progress_store import _memcache
from glance_progress_store.read import states
from glance_progress_store import records
from tests.e2e.helpers import CHUNK
from tests.e2e.helpers import failed_cleanly
from tests.e2e.helpers import follow_until_stored
from tests.e2e.helpers import new_image
from tests.e2e.helpers import OPENSTACK as OPENSTACK_CLI
from tests.e2e.helpers import openstack
from tests.e2e.helpers import openstack_on_a_terminal
from tests.e2e.helpers import Upload
from tests.e2e.helpers import wait_image
from tests import helpers
from tests.helpers import MiB
from tests.helpers import parse_lines

pytestmark = pytest.mark.e2e


def noauth(api):
    """(arguments, environment) of a glance reached without Keystone."""
    return ['--os-auth-type', 'none', '--os-endpoint', api.url], {}


def noauth_env(api):
    """The same through OS_* variables."""
    return [], {'OS_AUTH_TYPE': 'none', 'OS_ENDPOINT': api.url}


def endpoint(api, image_id, query=''):
    response = requests.get('%s/v2/images/%s/progress%s'
                            % (api.url, image_id, query),
                            headers=api.headers(), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def stored(glance_single, cleanup):
    """An image of glance_single, uploaded and stored: (id, size)."""
    client = glance_single.client()
    image_id = new_image(client, cleanup)
    data = helpers.payload(2 * MiB + 3)
    client.images.upload(image_id, helpers.SlowReader(data),
                         image_size=len(data))
    wait_image(client, image_id, lambda i: i['status'] == 'active')
    return image_id, len(data)


# -- show ------------------------------------------------------------------

@pytest.mark.parametrize('auth', [noauth, noauth_env])
def test_show_json_is_the_endpoints(glance_single, stored, auth):
    image_id, size = stored
    result = openstack(auth(glance_single), 'image', 'progress', 'show',
                       image_id, '-f', 'json')
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    own = endpoint(glance_single, image_id)
    assert sorted(shown) == sorted(own)
    assert shown.pop('age_s') >= 0 and own.pop('age_s') >= 0  # moves
    assert shown == own
    assert (shown['state'], shown['bytes'], shown['percent'],
            shown['image_status'], shown['stalled']) == (
        'stored', size, 100.0, 'active', False)


def test_show_one_column_as_value(glance_single, stored):
    result = openstack(noauth(glance_single), 'image', 'progress', 'show',
                       stored[0], '-c', 'state', '-c', 'bytes', '-f', 'value')
    assert (result.returncode, result.stdout) == (
        0, 'stored\n%d\n' % stored[1])


def test_show_by_name_and_an_ambiguous_name(glance_single, stored, cleanup):
    client = glance_single.client()
    name = client.images.get(stored[0])['name']
    result = openstack(noauth(glance_single), 'image', 'progress', 'show',
                       name, '-c', 'image_id', '-f', 'value')
    assert (result.returncode, result.stdout) == (0, stored[0] + '\n')
    twin = new_image(client, cleanup)
    client.images.update(twin, name=name)
    result = openstack(noauth(glance_single), 'image', 'progress', 'show',
                       name)
    failed_cleanly(result, 'More than one image is named %r' % name,
                   stored[0], twin)


def test_show_multi_store_backends(glance_multi, cleanup):
    client = glance_multi.client()
    image_id = new_image(client, cleanup)
    data = helpers.payload(MiB + 1)
    client.images.upload(image_id, helpers.SlowReader(data),
                         image_size=len(data), backend='ceph2')
    wait_image(client, image_id, lambda i: i['status'] == 'active')
    auth = noauth(glance_multi)
    shown = json.loads(openstack(auth, 'image', 'progress', 'show',
                                 image_id, '-f', 'json').stdout)
    assert list(shown['backends']) == ['ceph2']
    assert shown['backends']['ceph2']['state'] == 'stored'
    assert shown['backends']['ceph2']['bytes'] == len(data)
    table = openstack(auth, 'image', 'progress', 'show', image_id).stdout
    assert re.search(r'\| backends +\| ceph2: stored  1\.0 MiB / 1\.0 MiB '
                     r'\(100\.0%\)', table), table
    one = openstack(auth, 'image', 'progress', 'show', image_id,
                    '--backend', 'ceph2', '-f', 'json')
    one = json.loads(one.stdout)
    assert (one['backend'], one['state'], 'backends' in one) == (
        'ceph2', 'stored', False)
    bad = openstack(auth, 'image', 'progress', 'show', image_id,
                    '--backend', 'nowhere')
    failed_cleanly(bad, 'HTTP 400', "'nowhere' is not a progress_rbd")


# -- show --wait -------------------------------------------------------------

def test_wait_prints_lines_until_stored(glance_single, cleanup):
    client = glance_single.client()
    image_id = new_image(client, cleanup)
    data = helpers.payload(48 * MiB)  # 6 records of 8 MiB
    body = helpers.Valve(data, limit=1)
    upload = Upload(client, image_id, data, body=body)
    upload.start()
    result = follow_until_stored(
        noauth(glance_single), body, 3, image_id, '--wait', '--interval',
        0.2, '-c', 'state', '-f', 'value')
    assert upload.result(60) is None
    assert (result.returncode, result.stdout) == (0, 'stored\n')
    lines = parse_lines(result.stderr)
    assert lines[-1][2:5] == ['stored', '%d/%d' % (len(data), len(data)),
                              '100.0%']
    uploading = [line for line in lines if line[2] == 'uploading']
    assert len({line[3] for line in uploading}) >= 3, result.stderr
    assert {line[0] for line in lines} == {image_id}


def test_wait_on_a_terminal_draws_a_bar(glance_single, stored):
    result, text = openstack_on_a_terminal(
        noauth(glance_single), 'image', 'progress', 'show', stored[0],
        '--wait', '-c', 'state', '-f', 'value')
    assert (result.returncode, result.stdout) == (0, 'stored\n')
    assert re.search(r'%s \|█{30}\| stored  2\.0 MiB / 2\.0 MiB \(100\.0%%\)'
                     % stored[0], text), text


def test_wait_exit_code_of_a_failed_upload(glance_single, cleanup):
    from tests.e2e.conftest import IMAGE_SIZE_CAP
    client = glance_single.client()
    image_id = new_image(client, cleanup)
    waiting = subprocess.Popen(
        [OPENSTACK_CLI] + noauth(glance_single)[0] + [
            'image', 'progress', 'show', image_id, '--wait', '--interval',
            '0.2', '-c', 'state', '-c', 'reason', '-f', 'value'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert waiting.stderr.readline().split()[2] == states.WAITING
        data = helpers.payload(IMAGE_SIZE_CAP + MiB)
        upload = Upload(client, image_id, data, pace=0.01)
        upload.run()  # here: over the cap, glance refuses it
        assert upload.error is not None
        out, err = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
    assert waiting.returncode == states.EXIT_FAILED == 1
    assert out == 'failed\nsource_error\n'
    assert parse_lines(err)[-1][2] == 'failed' and 'Traceback' not in err


def test_wait_timeout_has_its_own_exit_code(glance_single, cleanup):
    image_id = new_image(glance_single.client(), cleanup)  # stays queued
    started = time.monotonic()
    result = openstack(noauth(glance_single), 'image', 'progress', 'show',
                       image_id, '--wait', '--interval', 0.2,
                       '--timeout', 1, '-c', 'state', '-f', 'value')
    assert 1 <= time.monotonic() - started < 30
    assert result.returncode == states.EXIT_TIMEOUT == 5
    assert result.stdout == 'unknown\n'
    assert result.stderr.splitlines()[-1] == '# timed out after 1s'


def test_wait_help_documents_the_exit_codes(glance_single):
    result = openstack(noauth(glance_single), 'image', 'progress', 'show',
                       '--help')
    assert result.returncode == 0
    text = ' '.join(result.stdout.split())
    for code in ('1 the upload failed', '2 the upload stalled',
                 '5 --timeout reached before the upload ended'):
        assert code in text, text


# -- list --------------------------------------------------------------------

def test_list_shows_an_upload_in_flight(glance_single, cleanup, stored):
    client = glance_single.client()
    image_id = new_image(client, cleanup)
    data = helpers.payload(40 * MiB)
    body = helpers.Valve(data, limit=1)  # held in flight while listed
    upload = Upload(client, image_id, data, body=body)
    upload.start()
    try:
        body.step_until('the upload of %s to store bytes' % image_id,
                        lambda: (endpoint(glance_single, image_id)['bytes']
                                 or 0) > 0, CHUNK)
        auth = noauth(glance_single)
        result = openstack(auth, 'image', 'progress', 'list',
                           '--all-projects', '-f', 'json')
        long = openstack(auth, 'image', 'progress', 'list',
                         '--all-projects', '--long', '-f', 'json')
        table = openstack(auth, 'image', 'progress', 'list',
                          '--all-projects')
        own = openstack(auth, 'image', 'progress', 'list')
    finally:
        body.open()
        assert upload.result(120) is None
    assert result.returncode == 0, result.stderr
    rows = {row['ID']: row for row in json.loads(result.stdout)}
    assert stored[0] not in rows  # active: not in flight
    row = rows[image_id]
    assert sorted(row) == ['Backend', 'ID', 'Image Status', 'Name',
                           'Percent', 'State']
    assert (row['Image Status'], row['State'], row['Backend']) == (
        'saving', 'uploading', None)
    assert 0 <= row['Percent'] < 100
    row = {r['ID']: r for r in json.loads(long.stdout)}[image_id]
    assert (row['Total'], row['Owner']) == (
        len(data), testbed.glance_api.PROJECT_ID)
    assert 0 < row['Bytes'] < len(data) and row['Rate (B/s)'] > 0
    assert image_id in table.stdout and '| uploading |' in table.stdout
    # without Keystone, the caller's project is not known
    failed_cleanly(own, 'your project is not known', '--all-projects')


@pytest.fixture(scope='module')
def glance_two_servers(ceph, memcached, workdir):
    """(a glance-api whose records are spread over the session's memcached
    and a second one, that second testbed.Memcached)."""
    with testbed.Memcached() as second:
        with testbed.GlanceAPI(
                os.path.join(workdir, 'glance-osc-two-servers'), ceph,
                '%s,%s' % (memcached.address, second.address),
                mode='single', progress_filter=True, workers=1) as api:
            yield api, second


def _ids_on(server, count):
    """Image ids whose three keys all live on ``server`` (0 or 1) of two."""
    found = []
    while len(found) < count:
        image_id = str(uuid.uuid4())
        if all(_memcache.server_index(key, 2) == server
               for key in records.keys_for(image_id).all()):
            found.append(image_id)
    return found


def test_list_shows_an_unreadable_image_in_its_row(glance_two_servers,
                                                   cleanup):
    api, second = glance_two_servers
    client = api.client()
    readable, unreadable = _ids_on(0, 2), _ids_on(1, 1)
    for image_id in readable + unreadable:
        new_image(client, cleanup, id=image_id)
        # staged (glance-direct): "uploading" until imported, no record
        client.images.stage(image_id, helpers.SlowReader(b'x' * CHUNK))
        wait_image(client, image_id, lambda i: i['status'] == 'uploading')
    second.stop()  # refuses: the progress of `unreadable` answers 503
    try:
        result = openstack(noauth(api), 'image', 'progress', 'list',
                           '--all-projects', '--long', '-f', 'json')
        table = openstack(noauth(api), 'image', 'progress', 'list',
                          '--all-projects')
    finally:
        second.start()
    assert result.returncode == 1, result
    assert 'Traceback' not in result.stderr, result.stderr
    rows = {row['ID']: row for row in json.loads(result.stdout)}
    assert sorted(rows) == sorted(readable + unreadable)
    for image_id in readable:
        assert (rows[image_id]['Image Status'], rows[image_id]['State'],
                rows[image_id]['Reason']) == ('uploading', 'unknown', None)
    row = rows[unreadable[0]]
    assert (row['Image Status'], row['State']) == ('uploading',
                                                   'unavailable')
    assert 'HTTP 503' in row['Reason'] and second.address in row['Reason']
    assert ('No upload progress of image %s: ' % unreadable[0]
            in result.stderr), result.stderr
    assert table.returncode == 1
    for image_id in readable + unreadable:
        assert image_id in table.stdout
    assert '| unavailable |' in table.stdout


# -- errors ------------------------------------------------------------------

def test_no_such_image(glance_single):
    for image in (str(uuid.uuid4()), 'no-such-image-%s' % uuid.uuid4().hex):
        result = openstack(noauth(glance_single), 'image', 'progress',
                           'show', image)
        failed_cleanly(result, 'No image with a name or ID of %r exists.'
                       % image)


@pytest.fixture(scope='module')
def glance_plain(ceph, memcached, workdir):
    """A glance-api without the upload_progress filter."""
    with testbed.GlanceAPI(os.path.join(workdir, 'glance-plain-osc'), ceph,
                           memcached.address, mode='single',
                           workers=1) as api:
        yield api


def test_glance_without_the_filter(glance_plain, cleanup):
    image_id = new_image(glance_plain.client(), cleanup)
    result = openstack(noauth(glance_plain), 'image', 'progress', 'show',
                       image_id)
    failed_cleanly(result, 'does not serve upload progress',
                   'upload_progress filter of glance_progress_store is not '
                   'enabled')


def test_frozen_memcached_is_glances_message(glance_single, cleanup,
                                             memcached):
    image_id = new_image(glance_single.client(), cleanup)
    memcached.pause()
    try:
        result = openstack(noauth(glance_single), 'image', 'progress',
                           'show', image_id)
    finally:
        memcached.resume()
    failed_cleanly(result, 'HTTP 503', 'Service Unavailable',
                   'upload progress is unavailable', 'did not answer')
