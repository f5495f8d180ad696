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

"""``GET /v2/images/{id}/progress`` through a real glance-api (no Keystone).

The session's glance-apis carry the upload_progress filter after
``context``; identities come from the test bed's headers (see
testbed.GlanceAPI.headers), so glance's own policy decides what the
caller sees. The Keystone-backed tests (real tokens, other projects) are
in test_progress_keystone.py.
"""

import contextlib
import json
import os
import time
import uuid

import pytest
import requests

import testbed

from glance_progress_store.read import reader as reader_mod
from tests.e2e.helpers import check_503_while_frozen
from tests.e2e.helpers import DEAD_RETRY
from tests.e2e.helpers import new_image
from tests.e2e.helpers import upload_while_polled
from tests.e2e.helpers import wait_image
from tests import helpers
from tests.helpers import MiB

pytestmark = pytest.mark.e2e

HEADER = 'OpenStack-Upload-Progress'
FIELDS = ['image_id', 'backend', 'state', 'bytes', 'total', 'percent',
          'rate_bytes_per_s', 'eta_s', 'age_s', 'started_at', 'updated_at',
          'reason', 'error', 'image_status', 'stalled']


def get(api, path, method='GET', headers=None, **kwargs):
    all_headers = dict(api.headers(), **(headers or {}))
    return requests.request(method, api.url + path, headers=all_headers,
                            timeout=30, **kwargs)


def progress(api, image_id, query='', version='v2'):
    return get(api, '/%s/images/%s/progress%s' % (version, image_id, query))


def test_owner_follows_an_upload_to_stored(glance_single, cleanup):
    client = glance_single.client()
    image_id = new_image(client, cleanup)
    # before any upload: unknown, with glance's status
    response = progress(glance_single, image_id)
    assert response.status_code == 200
    assert response.headers[HEADER] == '1'
    assert response.headers['Content-Type'].startswith('application/json')
    body = response.json()
    assert list(body) == FIELDS
    assert (body['state'], body['image_status'], body['stalled']) == (
        'unknown', 'queued', False)

    data = helpers.payload(48 * MiB + 7)
    seen = upload_while_polled(client, image_id, data,
                               lambda: progress(glance_single, image_id))
    assert {code for code, _ in seen} == {200}
    uploading = [b for _, b in seen if b['state'] == 'uploading']
    assert len({b['bytes'] for b in uploading}) >= 3  # several chunks seen
    assert all(b['image_status'] == 'saving' for b in uploading)
    nbytes = [b['bytes'] for _, b in seen if b['bytes'] is not None]
    assert nbytes == sorted(nbytes)
    final = seen[-1][1]
    assert (final['state'], final['bytes'], final['total'],
            final['percent']) == ('stored', len(data), len(data), 100.0)
    after = progress(glance_single, image_id).json()
    assert (after['state'], after['image_status']) == ('stored', 'active')


def test_versioned_paths_and_head(glance_single, cleanup):
    client = glance_single.client()
    image_id = new_image(client, cleanup)
    client.images.upload(image_id, helpers.SlowReader(b'x' * 100),
                         image_size=100)
    for version in ('v2', 'v2.17', 'v2.1'):
        response = progress(glance_single, image_id, version=version)
        assert response.status_code == 200, version
        assert response.json()['state'] == 'stored'
    # Accept-header versioning, as versionnegotiation takes it
    response = get(glance_single, '/images/%s/progress' % image_id,
                   headers={'Accept': 'application/vnd.openstack.images-v2'})
    assert response.status_code == 200 and response.headers[HEADER] == '1'
    head = get(glance_single, '/v2/images/%s/progress' % image_id, 'HEAD')
    assert head.status_code == 200 and head.content == b''
    assert head.headers[HEADER] == '1'


def test_unknown_image_is_glances_own_404(glance_single):
    missing = str(uuid.uuid4())
    response = progress(glance_single, missing)
    own = get(glance_single, '/v2/images/%s' % missing)
    assert response.status_code == own.status_code == 404
    assert response.text == own.text
    assert response.headers[HEADER] == '1'


def test_failed_upload_shows_failed(glance_single, cleanup):
    from tests.e2e.conftest import IMAGE_SIZE_CAP
    client = glance_single.client()
    image_id = new_image(client, cleanup)
    data = helpers.payload(IMAGE_SIZE_CAP + MiB)
    with pytest.raises(Exception):
        client.images.upload(image_id, helpers.SlowReader(data))
    body = progress(glance_single, image_id).json()
    assert (body['state'], body['reason']) == ('failed', 'source_error')
    assert body['image_status'] == 'queued'


def test_a_newer_release_s_record_is_served_not_bad(glance_single,
                                                    cleanup, memcached):
    # a glance-api node already on a newer release wrote a field more
    from glance_progress_store import records
    import memcache
    client = glance_single.client()
    image_id = new_image(client, cleanup)
    now = time.time()
    status = {'state': 'uploading', 'bytes': 3, 'total': 4, 'backend': None,
              'started_at': now - 1, 'updated_at': now, 'reason': None,
              'host': 'glance-9'}
    keys = records.keys_for(image_id)
    writer = memcache.Client([memcached.address])
    try:
        assert writer.set_multi({keys.total: b'4', keys.uploading: b'3',
                                 keys.status: json.dumps(status).encode()},
                                time=600) == []
    finally:
        writer.disconnect_all()
    body = progress(glance_single, image_id).json()
    assert (body['state'], body['bytes'], body['percent'], body['error']) \
        == ('uploading', 3, 75.0, None)  # was "bad" with an error
    assert list(body) == FIELDS


def test_frozen_memcached_is_a_503_within_the_timeout(glance_single, cleanup,
                                                      memcached):
    client = glance_single.client()
    image_id = new_image(client, cleanup)
    check_503_while_frozen(memcached,
                           lambda: progress(glance_single, image_id))


@pytest.mark.parametrize('path,expected', [
    ('/v2/images/not-a-uuid/progress', {404}),
    ('/v2/images/%2e%2e/progress', {404}),
    ('/v2/images/../progress', {404}),
    ('/v2/images/a%2Fb/progress', {404}),
    ('/v2/images/' + 'x' * 5000 + '/progress', {404}),
    ('/v2/images/%00/progress', {400, 404}),
    ('/v2/images//progress', {404}),
])
def test_hostile_paths_are_refused_like_glance(glance_single, path,
                                               expected):
    response = get(glance_single, path)
    assert response.status_code in expected, (path, response.status_code)


@pytest.mark.parametrize('method', ['POST', 'PUT', 'DELETE', 'PATCH'])
def test_other_methods_pass_through(glance_single, cleanup, method):
    client = glance_single.client()
    image_id = new_image(client, cleanup)
    response = get(glance_single, '/v2/images/%s/progress' % image_id,
                   method, data=b'{}')
    assert HEADER not in response.headers
    assert response.status_code in (404, 405)  # glance's router's answer
    assert client.images.get(image_id)['status'] == 'queued'


def test_multi_store_records_per_backend(glance_multi, cleanup):
    client = glance_multi.client()
    image_id = new_image(client, cleanup)
    data = helpers.payload(3 * MiB + 5)
    client.images.upload(image_id, helpers.SlowReader(data),
                         image_size=len(data), backend='ceph1')
    wait_image(client, image_id, lambda i: i['status'] == 'active')
    body = progress(glance_multi, image_id).json()
    assert (body['state'], body['backend']) == ('stored', None)
    assert list(body['backends']) == ['ceph1']

    client.images.image_import(image_id, method='copy-image',
                               stores=['ceph2'])
    wait_image(client, image_id,
               lambda i: 'ceph2' in i.get('stores', '').split(','))
    body = helpers.wait_for('the copy to ceph2 to be stored', lambda: (
        lambda body: body['backends'].get('ceph2', {}).get(
            'state') == 'stored' and body)(
                progress(glance_multi, image_id).json()), 30)
    assert sorted(body['backends']) == ['ceph1', 'ceph2']
    for name in ('ceph1', 'ceph2'):
        record = body['backends'][name]
        assert (record['state'], record['backend'], record['bytes']) == (
            'stored', name, len(data))
        assert list(record) == FIELDS
    one = progress(glance_multi, image_id, '?backend=ceph2').json()
    assert (one['backend'], one['state']) == ('ceph2', 'stored')
    assert 'backends' not in one
    bad = progress(glance_multi, image_id, '?backend=nowhere')
    assert bad.status_code == 400 and 'nowhere' in bad.json()[
        'error']['message']
    assert json.loads(bad.text)['error']['code'] == 400


# -- a glance-api whose configuration has a drop-in directory ------------

DROP_IN_PREFIX = 'dropin-'
DROP_IN_CEPH2_PREFIX = 'dropin-ceph2-'


@contextlib.contextmanager
def _home(path):
    """HOME for the processes started meanwhile (uWSGI inherits it)."""
    before = os.environ.get('HOME')
    os.environ['HOME'] = path
    try:
        yield
    finally:
        if before is None:
            del os.environ['HOME']
        else:
            os.environ['HOME'] = before


@contextlib.contextmanager
def _glance_with_drop_in(root, ceph, memcached, drop_in_text, **kwargs):
    """glance-api with a ``glance-api.conf.d`` that oslo.config finds by
    itself (here under ``~/.glance/``, as under ``/etc/glance/``): its
    CONF has a config_dir, whose file holds ``drop_in_text``."""
    drop_in = os.path.join(root, 'home', '.glance', 'glance-api.conf.d')
    os.makedirs(drop_in)
    with open(os.path.join(drop_in, '50-progress.conf'), 'w') as f:
        f.write(drop_in_text)
    api = testbed.GlanceAPI(root, ceph, memcached.address,
                            progress_filter=True, **kwargs)
    with _home(os.path.join(root, 'home')):
        api.start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture(scope='module')
def glance_drop_in(ceph, memcached, workdir):
    """Single store; the drop-in sets the key prefix."""
    with _glance_with_drop_in(
            os.path.join(workdir, 'glance-drop-in'), ceph, memcached,
            '[glance_store]\nprogress_key_prefix = %s\n' % DROP_IN_PREFIX,
            mode='single') as api:
        yield api


@pytest.fixture(scope='module')
def glance_multi_drop_in(ceph, memcached, workdir):
    """Multi store; the drop-in sets a prefix for every backend in
    ``[backend_defaults]``, and another one in ``[ceph2]``."""
    with _glance_with_drop_in(
            os.path.join(workdir, 'glance-multi-drop-in'), ceph, memcached,
            '[backend_defaults]\nprogress_key_prefix = %s\n'
            '[ceph2]\nprogress_key_prefix = %s\n'
            % (DROP_IN_PREFIX, DROP_IN_CEPH2_PREFIX),
            mode='multi', backends=helpers.BACKENDS) as api:
        yield api


def test_a_config_dir_s_drop_in_is_read_as_the_store_reads_it(
        glance_drop_in, memcached, cleanup):
    # was a 500 without the header on every request: oslo.config's
    # config_dir is a list, and the filter parsed glance's files again
    client = glance_drop_in.client()
    image_id = new_image(client, cleanup)
    data = helpers.payload(3 * MiB + 1)
    client.images.upload(image_id, helpers.SlowReader(data),
                         image_size=len(data))
    # the store wrote the drop-in's prefix ...
    prefixed = reader_mod.ProgressReader([memcached.address], DROP_IN_PREFIX)
    assert prefixed.get(image_id).state == 'stored'
    assert reader_mod.ProgressReader([memcached.address]).get(
        image_id) is None
    # ... and the endpoint reads it
    response = progress(glance_drop_in, image_id)
    assert response.status_code == 200
    assert response.headers[HEADER] == '1'
    body = response.json()
    assert (body['state'], body['bytes'], body['image_status']) == (
        'stored', len(data), 'active')


def test_multi_store_drop_ins_are_read_as_the_store_reads_them(
        glance_multi_drop_in, memcached, cleanup):
    # each backend's section, falling back to [backend_defaults], from
    # the drop-in: what glance_store gives the store, the endpoint reads
    client = glance_multi_drop_in.client()
    data = helpers.payload(MiB + 3)
    uploaded = {}
    for backend, prefix in (('ceph1', DROP_IN_PREFIX),
                            ('ceph2', DROP_IN_CEPH2_PREFIX)):
        image_id = new_image(client, cleanup)
        client.images.upload(image_id, helpers.SlowReader(data),
                             image_size=len(data), backend=backend)
        wait_image(client, image_id, lambda i: i['status'] == 'active')
        written = reader_mod.ProgressReader([memcached.address], prefix)
        assert written.get(image_id, backend).state == 'stored', backend
        uploaded[backend] = image_id
    for backend, image_id in uploaded.items():
        body = progress(glance_multi_drop_in, image_id).json()
        assert list(body['backends']) == [backend]
        assert (body['state'], body['bytes']) == ('stored', len(data))
        assert body['backends'][backend]['state'] == 'stored'


def test_a_frozen_memcached_is_known_down_then_answers_again(
        glance_drop_in, cleanup, memcached):
    # each worker waits memcached_socket_timeout once, then answers 503
    # with Retry-After at once while memcached is known down; it asks
    # memcached again after memcached_dead_retry, and serves progress
    client = glance_drop_in.client()
    image_id = new_image(client, cleanup)
    assert progress(glance_drop_in, image_id).status_code == 200
    answers = []
    memcached.pause()
    try:
        for _ in range(6):
            answers.append(progress(glance_drop_in, image_id))
    finally:
        memcached.resume()
    known_down_since = time.monotonic()
    messages = []
    for answer in answers:
        assert answer.status_code == 503
        assert answer.headers[HEADER] == '1'
        assert 1 <= int(answer.headers['Retry-After']) <= DEAD_RETRY
        messages.append(answer.json()['error']['message'])
    waited = [m for m in messages if 'known down' not in m]
    # one wait for the timeout per worker at most, not one per request
    assert all('did not answer get' in m for m in waited), messages
    assert len(waited) <= glance_drop_in.workers, messages
    assert len(messages) - len(waited) >= 6 - glance_drop_in.workers
    # every worker asks memcached again once its dead_retry is over
    helpers.wait_for('progress to be served again', lambda: (
        time.monotonic() > known_down_since + DEAD_RETRY and
        progress(glance_drop_in, image_id).status_code == 200),
        DEAD_RETRY + 30)
    for _ in range(2 * glance_drop_in.workers):
        assert progress(glance_drop_in, image_id).status_code == 200
