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

"""``openstack image progress`` with clouds.yaml and a real Keystone.

The users of the test bed's Keystone (alice of project alpha, bob of
beta, the admin) run the real ``openstack`` CLI; glance's endpoint comes
from Keystone's catalog, the token from their passwords.
"""

import json
import re

import pytest
import requests

from tests.e2e.helpers import failed_cleanly
from tests.e2e.helpers import follow_until_stored
from tests.e2e.helpers import openstack
from tests.e2e.helpers import openstack_on_a_terminal
from tests.e2e.helpers import Upload
from tests.e2e.helpers import wait_image
from tests import helpers
from tests.helpers import MiB
from tests.helpers import parse_lines
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


def cloud(clouds_yaml, name):
    """(arguments, environment) of a user of clouds.yaml."""
    return ['--os-cloud', name], {'OS_CLIENT_CONFIG_FILE': clouds_yaml}


def alices_image(glance_keystone, cleanup, size=None):
    """An image of alice's; with a size, its upload started, held by the
    test: (id, the Upload, its body, a helpers.Valve)."""
    client = glance_keystone.client('alice')
    image_id = client.images.create(name='osc-ks-%s' % len(cleanup),
                                    disk_format='raw',
                                    container_format='bare')['id']
    cleanup.append(image_id)
    if size is None:
        return image_id, None, None
    data = helpers.payload(size)
    body = helpers.Valve(data, limit=1)
    upload = Upload(client, image_id, data, body=body)
    upload.start()
    return image_id, upload, body


def endpoint(api, user, image_id):
    return requests.get('%s/v2/images/%s/progress' % (api.url, image_id),
                        headers=api.headers(user), timeout=30)


def test_show_json_through_the_catalog(glance_keystone, clouds_yaml,
                                       cleanup):
    image_id, upload, body = alices_image(glance_keystone, cleanup, 3 * MiB)
    body.open()
    assert upload.result(60) is None
    wait_image(glance_keystone.client('alice'), image_id,
               lambda i: i['status'] == 'active')
    result = openstack(cloud(clouds_yaml, 'alice'), 'image', 'progress',
                       'show', image_id, '-f', 'json')
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    expected = endpoint(glance_keystone, 'alice', image_id).json()
    for volatile in ('age_s',):
        shown.pop(volatile), expected.pop(volatile)
    assert shown == expected
    assert (shown['state'], shown['image_status'], shown['bytes']) == (
        'stored', 'active', 3 * MiB)
    # bob of another project cannot see it: glance's not found
    bob = openstack(cloud(clouds_yaml, 'bob'), 'image', 'progress', 'show',
                    image_id)
    failed_cleanly(bob, 'No image')
    # the admin can
    admin = openstack(cloud(clouds_yaml, 'admin'), 'image', 'progress',
                      'show', image_id, '-c', 'state', '-f', 'value')
    assert (admin.returncode, admin.stdout) == (0, 'stored\n')


def test_wait_with_lines_and_with_a_bar(glance_keystone, clouds_yaml,
                                        cleanup):
    alice = cloud(clouds_yaml, 'alice')
    image_id, upload, body = alices_image(glance_keystone, cleanup,
                                          40 * MiB)
    result = follow_until_stored(alice, body, 2, image_id, '--wait',
                                 '--interval', 0.2, '-c', 'state',
                                 '-f', 'value')
    assert upload.result(60) is None
    assert (result.returncode, result.stdout) == (0, 'stored\n')
    lines = parse_lines(result.stderr)
    assert lines[-1][2:5] == ['stored', '%d/%d' % (40 * MiB, 40 * MiB),
                              '100.0%']
    assert len({line[3] for line in lines if line[2] == 'uploading'}) >= 2
    # on a terminal: tqdm's bar
    result, text = openstack_on_a_terminal(
        alice, 'image', 'progress', 'show', image_id, '--wait', '-c',
        'state', '-f', 'value')
    assert (result.returncode, result.stdout) == (0, 'stored\n')
    assert re.search(r'%s \|█{30}\| stored  40\.0 MiB / 40\.0 MiB '
                     r'\(100\.0%%\)' % image_id, text), text


def test_list_for_a_member_and_all_projects_for_the_admin(
        glance_keystone, clouds_yaml, cleanup):
    # the upload is held in flight until every list ran
    image_id, upload, body = alices_image(glance_keystone, cleanup,
                                          40 * MiB)
    try:
        wait_for('alice\'s upload', lambda: endpoint(
            glance_keystone, 'alice', image_id).json()['state'] ==
            'uploading', 60, interval=0.05)
        mine = openstack(cloud(clouds_yaml, 'alice'), 'image', 'progress',
                         'list', '-f', 'json')
        bobs = openstack(cloud(clouds_yaml, 'bob'), 'image', 'progress',
                         'list', '-f', 'json')
        admin_own = openstack(cloud(clouds_yaml, 'admin'), 'image',
                              'progress', 'list', '-f', 'json')
        admin_all = openstack(cloud(clouds_yaml, 'admin'), 'image',
                              'progress', 'list', '--all-projects',
                              '-f', 'json')
    finally:
        body.open()
        assert upload.result(120) is None
    for result in (mine, bobs, admin_own, admin_all):
        assert result.returncode == 0, result.stderr
    rows = {r['ID']: r for r in json.loads(mine.stdout)}
    assert (rows[image_id]['State'], rows[image_id]['Image Status']) == (
        'uploading', 'saving')
    assert image_id not in {r['ID'] for r in json.loads(bobs.stdout)}
    assert image_id not in {r['ID'] for r in json.loads(admin_own.stdout)}
    assert image_id in {r['ID'] for r in json.loads(admin_all.stdout)}
