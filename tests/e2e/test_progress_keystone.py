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

"""``GET /v2/images/{id}/progress`` with a real Keystone and real tokens.

glance-api runs the stock ``keystone`` flavor of etc/glance-api-paste.ini
(``authtoken context upload_progress rootapp``) with keystonemiddleware
validating Keystone's fernet tokens: who sees an upload's progress is
decided by glance's own image-show for the caller's project, roles and
image memberships.  Users (testbed.keystone.USERS): admin; alice, member
of project alpha; bob, member of project beta.
"""

import uuid

from glanceclient import exc as glance_exc
import pytest
import requests

from tests.e2e.helpers import check_503_while_frozen
from tests.e2e.helpers import upload_while_polled
from tests import helpers
from tests.helpers import MiB

pytestmark = pytest.mark.e2e

HEADER = 'OpenStack-Upload-Progress'
FIELDS = ['image_id', 'backend', 'state', 'bytes', 'total', 'percent',
          'rate_bytes_per_s', 'eta_s', 'age_s', 'started_at', 'updated_at',
          'reason', 'error', 'image_status', 'stalled']
# glance's rbd_store_chunk_size in the test bed (testbed.GlanceAPI).
CHUNK = 8 * MiB


class Caller:
    """A user with one token, talking to one glance-api node."""

    def __init__(self, api, user):
        self.api, self.user = api, user
        self.token = api.keystone.token(user)

    def on(self, api):
        """The same user and token on another node."""
        other = Caller.__new__(Caller)
        other.api, other.user, other.token = api, self.user, self.token
        return other

    def get(self, path, method='GET'):
        return requests.request(method, self.api.url + path,
                                headers={'X-Auth-Token': self.token},
                                timeout=30)

    def progress(self, image_id, version='v2', method='GET'):
        return self.get('/%s/images/%s/progress' % (version, image_id),
                        method)

    def show(self, image_id):
        return self.get('/v2/images/%s' % image_id)


@pytest.fixture(autouse=True)
def deleted_in_glance(cleanup, glance_keystone):
    """The images of ``cleanup`` are deleted from glance too (as the
    admin), before ``cleanup`` removes what is left in Ceph."""
    yield
    client = glance_keystone.client('admin')
    for image_id in cleanup:
        try:
            client.images.delete(image_id)
        except glance_exc.HTTPException:
            pass  # never uploaded, or glance's own 404


def new_image(api, user, cleanup, **properties):
    image_id = api.client(user).images.create(
        name='ks-%s' % uuid.uuid4().hex[:8], disk_format='raw',
        container_format='bare', **properties)['id']
    cleanup.append(image_id)
    return image_id


def upload_and_poll(upload_api, poll_caller, image_id, size):
    data = helpers.payload(size)
    seen = upload_while_polled(upload_api.client(poll_caller.user),
                               image_id, data,
                               lambda: poll_caller.progress(image_id))
    return data, seen


def check_followed(seen, size):
    assert {code for code, _ in seen} == {200}
    uploading = [b for _, b in seen if b['state'] == 'uploading']
    assert len({b['bytes'] for b in uploading}) >= 3  # several chunks seen
    assert all(b['image_status'] == 'saving' for b in uploading)
    nbytes = [b['bytes'] for _, b in seen if b['bytes'] is not None]
    assert nbytes == sorted(nbytes)
    final = seen[-1][1]
    assert list(final) == FIELDS
    assert (final['state'], final['bytes'], final['total'],
            final['percent']) == ('stored', size, size, 100.0)


def test_owner_follows_an_upload_to_stored(glance_keystone, cleanup):
    alice = Caller(glance_keystone, 'alice')
    image_id = new_image(glance_keystone, 'alice', cleanup)
    size = 6 * CHUNK + 7  # seven of glance's chunks
    data, seen = upload_and_poll(glance_keystone, alice, image_id, size)
    check_followed(seen, len(data))
    after = alice.progress(image_id)
    assert after.headers[HEADER] == '1'
    assert (after.json()['state'], after.json()['image_status']) == (
        'stored', 'active')


def test_upload_on_one_node_progress_on_the_other(
        glance_keystone, glance_keystone_node2, cleanup):
    alice = Caller(glance_keystone, 'alice')
    image_id = new_image(glance_keystone, 'alice', cleanup)
    size = 5 * CHUNK + 3
    data, seen = upload_and_poll(glance_keystone, alice.on(
        glance_keystone_node2), image_id, size)
    check_followed(seen, len(data))
    # the node that did not take the upload answers from the same record
    for api in (glance_keystone, glance_keystone_node2):
        body = alice.on(api).progress(image_id).json()
        assert (body['state'], body['bytes'], body['image_status']) == (
            'stored', size, 'active')


def test_other_project_gets_glances_own_404(glance_keystone, cleanup):
    image_id = new_image(glance_keystone, 'alice', cleanup,
                         visibility='private')
    bob = Caller(glance_keystone, 'bob')
    missing = str(uuid.uuid4())
    hidden = bob.progress(image_id)
    absent = bob.progress(missing)
    show = bob.show(image_id)
    assert hidden.status_code == absent.status_code == show.status_code == 404
    # glance's body names the id asked for; otherwise byte for byte the same
    assert hidden.content.replace(image_id.encode(), missing.encode()) == (
        absent.content)
    assert hidden.content == show.content
    assert hidden.headers['Content-Type'] == absent.headers['Content-Type']
    assert hidden.headers[HEADER] == '1'
    # and the owner sees it
    assert Caller(glance_keystone, 'alice').progress(
        image_id).status_code == 200


def test_progress_exactly_when_image_show(glance_keystone, keystone,
                                          cleanup):
    """A shared image: bob sees its progress when glance shows it to him,
    in every member status."""
    image_id = new_image(glance_keystone, 'alice', cleanup,
                         visibility='shared')
    bob = Caller(glance_keystone, 'bob')
    beta = keystone.project_ids['beta']

    def codes():
        return bob.show(image_id).status_code, bob.progress(
            image_id).status_code

    seen = {'not a member': codes()}
    glance_keystone.client('alice').image_members.create(image_id, beta)
    seen['pending'] = codes()
    members = glance_keystone.client('bob').image_members
    members.update(image_id, beta, 'accepted')
    seen['accepted'] = codes()
    members.update(image_id, beta, 'rejected')
    seen['rejected'] = codes()
    # glance shows a shared image to a member in any status (only image
    # lists filter on it); the filter agrees with image-show in each one.
    assert seen == {'not a member': (404, 404), 'pending': (200, 200),
                    'accepted': (200, 200), 'rejected': (200, 200)}
    body = bob.progress(image_id).json()
    assert (body['state'], body['image_status']) == ('unknown', 'queued')
    glance_keystone.client('alice').image_members.delete(image_id, beta)
    assert codes() == (404, 404)


def test_public_image_is_seen_by_everyone(glance_keystone, cleanup):
    # publicize_image is an admin's right in glance's default policy
    image_id = new_image(glance_keystone, 'admin', cleanup,
                         visibility='public')
    client = glance_keystone.client('admin')
    client.images.upload(image_id, helpers.SlowReader(b'p' * 1000),
                         image_size=1000)
    for user in ('alice', 'bob', 'admin'):
        body = Caller(glance_keystone, user).progress(image_id).json()
        assert (body['state'], body['bytes'], body['image_status']) == (
            'stored', 1000, 'active'), user


def test_admin_sees_every_project(glance_keystone, cleanup):
    admin = Caller(glance_keystone, 'admin')
    for user in ('alice', 'bob'):
        image_id = new_image(glance_keystone, user, cleanup,
                             visibility='private')
        assert admin.show(image_id).status_code == 200
        response = admin.progress(image_id)
        assert response.status_code == 200
        assert response.json()['image_status'] == 'queued'


@pytest.mark.parametrize('token', [None, 'not-a-token', 'expired'])
def test_no_or_bad_token_is_authtokens_401(glance_keystone, keystone,
                                           cleanup, token):
    image_id = new_image(glance_keystone, 'alice', cleanup)
    headers = {}
    if token == 'expired':  # a real token, revoked
        headers['X-Auth-Token'] = keystone.token('alice')
        keystone.request('DELETE', '/auth/tokens', headers={
            'X-Subject-Token': headers['X-Auth-Token']})
    elif token is not None:
        headers['X-Auth-Token'] = token
    for path in ('/v2/images/%s/progress' % image_id,
                 '/v2/images/%s/progress' % uuid.uuid4(),
                 '/v2/images/%s' % image_id):
        response = requests.get(glance_keystone.url + path, headers=headers,
                                timeout=30)
        assert response.status_code == 401, path
        # authtoken (delay_auth_decision) lets the request through marked
        # invalid, glance's context filter refuses it before ours: no
        # progress header, the same answer as for any glance path.
        assert HEADER not in response.headers
        assert response.headers['WWW-Authenticate'] == (
            'Keystone uri="%s"' % keystone.url)


def test_versioned_paths_and_head(glance_keystone, cleanup):
    alice = Caller(glance_keystone, 'alice')
    image_id = new_image(glance_keystone, 'alice', cleanup)
    glance_keystone.client('alice').images.upload(
        image_id, helpers.SlowReader(b'x' * 100), image_size=100)
    for version in ('v2', 'v2.17', 'v2.1'):
        response = alice.progress(image_id, version=version)
        assert response.status_code == 200, version
        assert response.json()['state'] == 'stored'
    head = alice.progress(image_id, 'v2.17', 'HEAD')
    assert head.status_code == 200 and head.content == b''
    assert head.headers[HEADER] == '1'
    hidden = Caller(glance_keystone, 'bob').progress(image_id, 'v2.17')
    assert hidden.status_code == 404


def test_never_uploaded_is_unknown(glance_keystone, cleanup):
    image_id = new_image(glance_keystone, 'alice', cleanup)
    body = Caller(glance_keystone, 'alice').progress(image_id).json()
    assert list(body) == FIELDS
    assert (body['state'], body['bytes'], body['image_status'],
            body['stalled']) == ('unknown', None, 'queued', False)


def test_failed_upload_shows_failed(glance_keystone, cleanup):
    from tests.e2e.conftest import IMAGE_SIZE_CAP
    image_id = new_image(glance_keystone, 'alice', cleanup)
    data = helpers.payload(IMAGE_SIZE_CAP + MiB)
    with pytest.raises(glance_exc.HTTPOverLimit):
        glance_keystone.client('alice').images.upload(
            image_id, helpers.SlowReader(data))
    body = Caller(glance_keystone, 'alice').progress(image_id).json()
    assert (body['state'], body['reason']) == ('failed', 'source_error')
    # glance put the image back to queued: it may be uploaded again
    assert body['image_status'] == 'queued'
    assert body['bytes'] < len(data)


def test_frozen_memcached_is_a_503_within_the_timeout(glance_keystone,
                                                      cleanup, memcached):
    alice = Caller(glance_keystone, 'alice')
    image_id = new_image(glance_keystone, 'alice', cleanup)
    # the token validated (and cached by authtoken) in both workers
    for _ in range(4):
        assert alice.progress(image_id).status_code == 200
    check_503_while_frozen(memcached, lambda: alice.progress(image_id))


def test_clouds_yaml_and_the_catalog(glance_keystone, clouds_yaml, cleanup):
    """What openstackclient does: a cloud of clouds.yaml, a keystoneauth
    session, the image endpoint from the catalog."""
    from openstack import config
    image_id = new_image(glance_keystone, 'alice', cleanup)
    regions = config.OpenStackConfig(config_files=[clouds_yaml])
    for cloud, expected in (('alice', 200), ('bob', 404), ('admin', 200)):
        session = regions.get_one(cloud).get_session()
        response = session.get(
            '/v2/images/%s/progress' % image_id, raise_exc=False,
            endpoint_filter={'service_type': 'image', 'interface': 'public'})
        assert response.status_code == expected, cloud
        assert response.url.startswith(glance_keystone.url)
        assert response.headers[HEADER] == '1'
