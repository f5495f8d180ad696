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

"""The paste filter alone: ``webob.Request.blank`` in, a fake glance below.

Fakes, and why the fast tier needs them: this tier starts no glance and
no memcached (tests/unit/conftest.py), and what is tested here is the
filter's own mapping of glance's and memcached's answers (403, 404, a
body that is not an image, a server that does not answer, an
unexpected error) to its own, which a real glance or memcached cannot be
made to produce on demand. The same paths through a real glance-api,
Keystone and memcached are in tests/e2e/test_progress_api.py and
tests/e2e/test_progress_keystone.py.
"""

import json
import time

from oslo_config import cfg
import pytest
import webob

from glance_progress_store import _memcache
from glance_progress_store import middleware
from glance_progress_store import options
from glance_progress_store import records

IMAGE_ID = '6b5a2d5e-1f0b-4a8e-9a49-5e0b1c2f3d4e'
SERVER = '192.0.2.10:11211'
HEADER = records.HEADER


class FakeGlance:
    """The rest of glance's pipeline: image-show answers as set here."""

    def __init__(self, status=200, body=None):
        self.status = status
        self.body = body
        self.calls = []

    def image(self, image_id, status='saving'):
        self.body = json.dumps({'id': image_id, 'status': status})

    def __call__(self, environ, start_response):
        self.calls.append(dict(environ))
        response = webob.Response(status=self.status,
                                  content_type='application/json',
                                  charset='utf-8')
        response.text = (self.body if self.body is not None
                         else json.dumps({'status': self.status}))
        return response(environ, start_response)


class FakeMemcached:
    """Memcached servers in-process: values by (server, key), and servers
    that do not answer (a frozen memcached, as _memcache reports it)."""

    def __init__(self):
        self.values = {}
        self.frozen = set()
        self.broken = None  # an exception every read raises
        self.reads = []

    def put(self, image_id, record, prefix='', server=SERVER):
        keys = records.keys_for(image_id, None, prefix)
        for key, value in records.key_values(keys, record).items():
            self.values[server, key] = _memcache.RawValue(0, value)

    def connection(self, server, socket_timeout):
        return _FakeConnection(self, server, socket_timeout)


class _FakeConnection:
    """What reader.ProgressReader uses of _memcache.Connection."""

    def __init__(self, memcached, server, socket_timeout):
        self.memcached = memcached
        self.server = server
        self.socket_timeout = socket_timeout

    def get_many(self, keys):
        self.memcached.reads.append(self.server)
        if self.memcached.broken is not None:
            raise self.memcached.broken
        if self.server in self.memcached.frozen:
            raise _memcache.ServerUnavailable(
                self.server, 'did not answer get within %g s'
                % self.socket_timeout)
        return {key: self.memcached.values[self.server, key]
                for key in keys if (self.server, key) in self.memcached.values}

    def close(self):
        pass


@pytest.fixture
def memcached(monkeypatch):
    fake = FakeMemcached()
    monkeypatch.setattr(_memcache, 'Connection', fake.connection)
    return fake


def glance_conf(tmp_path, text='', drop_in=None):
    """A parsed configuration as glance-api's CONF is: its file, its
    drop-in directory (``glance-api.conf.d``) when given, the filter's
    options registered as the filter registers them."""
    conf_file = tmp_path / 'glance-api.conf'
    conf_file.write_text('[glance_store]\nprogress_memcached_servers = %s\n'
                         '%s' % (SERVER, text))
    dirs = []
    if drop_in is not None:
        conf_d = tmp_path / 'glance-api.conf.d'
        conf_d.mkdir()
        (conf_d / '50-progress.conf').write_text(drop_in)
        dirs.append(str(conf_d))
    conf = cfg.ConfigOpts()
    conf.register_opts(options.FILTER_OPTS, group=options.FILTER_GROUP)
    conf([], project='glance', prog='glance-api',
         default_config_files=[str(conf_file)], default_config_dirs=dirs)
    return conf


@pytest.fixture
def use_conf(monkeypatch):
    """Makes ``conf`` glance-api's CONF for a fresh process state."""
    def use(conf):
        monkeypatch.setattr(middleware, 'CONF', conf)
        monkeypatch.setattr(middleware, '_STATE', None)
        return conf
    return use


@pytest.fixture
def conf(tmp_path, use_conf):
    return use_conf(glance_conf(tmp_path))


def uploading(nbytes=3, total=4):
    now = time.time()
    return records.ProgressRecord('uploading', nbytes, total, None,
                                  now - 10, now)


def ask(glance, image_id=IMAGE_ID, method='GET', query=''):
    request = webob.Request.blank(
        '/v2/images/%s/progress%s' % (image_id, query),
        environ={'REQUEST_METHOD': method})
    return request.get_response(middleware.UploadProgressFilter(glance))


def test_progress_of_an_upload(conf, memcached):
    glance = FakeGlance()
    glance.image(IMAGE_ID)
    memcached.put(IMAGE_ID, uploading())
    response = ask(glance)
    assert response.status_int == 200
    assert response.headers[HEADER] == '1'
    assert response.content_type == 'application/json'
    body = response.json
    assert (body['image_id'], body['state'], body['bytes'], body['total'],
            body['image_status']) == (IMAGE_ID, 'uploading', 3, 4, 'saving')
    # image-show, with the caller's request, without the query or a body
    show, = glance.calls
    assert (show['REQUEST_METHOD'], show['PATH_INFO'],
            show['QUERY_STRING']) == ('GET', '/v2/images/%s' % IMAGE_ID, '')


def test_head_answers_the_status_and_headers_without_a_body(conf,
                                                            memcached):
    glance = FakeGlance()
    glance.image(IMAGE_ID)
    response = ask(glance, method='HEAD')
    assert response.status_int == 200
    assert response.headers[HEADER] == '1'
    assert response.body == b''
    assert glance.calls[0]['REQUEST_METHOD'] == 'GET'


@pytest.mark.parametrize('status', [403, 404])
def test_glance_s_refusal_is_passed_on_unchanged(conf, memcached, status):
    glance = FakeGlance(status, body='{"glance": "own answer"}')
    response = ask(glance)
    assert response.status_int == status
    assert response.text == '{"glance": "own answer"}'
    assert response.headers[HEADER] == '1'
    assert memcached.reads == []  # nothing told before glance said yes


@pytest.mark.parametrize('body', ['<html>proxy error</html>', '[]',
                                  '{"name": "no status"}'])
def test_a_body_that_is_not_an_image_is_a_502(conf, memcached, body):
    response = ask(FakeGlance(200, body))
    assert response.status_int == 502
    assert response.headers[HEADER] == '1'
    assert response.json['error']['code'] == 502


def test_memcached_that_does_not_answer_is_a_503_with_retry_after(
        conf, memcached):
    glance = FakeGlance()
    glance.image(IMAGE_ID)
    memcached.frozen.add(SERVER)
    response = ask(glance)
    assert response.status_int == 503
    assert response.headers[HEADER] == '1'
    assert int(response.headers['Retry-After']) >= 1
    assert 'did not answer get' in response.json['error']['message']


def test_a_server_known_down_is_not_asked_again(conf, memcached):
    # the breaker: one read waited for the frozen server, the next
    # requests answer 503 at once (its rules: tests/unit/test_breaker.py)
    glance = FakeGlance()
    glance.image(IMAGE_ID)
    memcached.frozen.add(SERVER)
    answers = [ask(glance) for _ in range(5)]
    assert memcached.reads == [SERVER]
    assert [a.status_int for a in answers] == [503] * 5
    for answer in answers[1:]:
        assert answer.headers[HEADER] == '1'
        assert int(answer.headers['Retry-After']) >= 1
        assert 'known down' in answer.json['error']['message']


def test_an_unexpected_error_is_a_500_with_the_header(conf, memcached):
    glance = FakeGlance()
    glance.image(IMAGE_ID)
    memcached.broken = RuntimeError('a bug')
    response = ask(glance)
    assert response.status_int == 500
    assert response.headers[HEADER] == '1'
    assert 'a bug' not in response.text  # details go to the log only


@pytest.mark.parametrize('method, path', [
    ('POST', '/v2/images/%s/progress' % IMAGE_ID),
    ('PUT', '/v2/images/%s/progress' % IMAGE_ID),
    ('DELETE', '/v2/images/%s/progress' % IMAGE_ID),
    ('GET', '/v2/images/%s' % IMAGE_ID),
    ('GET', '/v2/images/%s/progress/more' % IMAGE_ID),
    ('GET', '/v2/images'),
])
def test_other_requests_go_to_glance_untouched(conf, memcached, method,
                                               path):
    glance = FakeGlance(405, body='{"glance": "router"}')
    request = webob.Request.blank(path, environ={'REQUEST_METHOD': method},
                                  body=b'{"a": 1}')
    environ = dict(request.environ)
    response = request.get_response(middleware.UploadProgressFilter(glance))
    assert response.status_int == 405
    assert HEADER not in response.headers
    seen, = glance.calls
    assert {k: seen[k] for k in environ} == environ
    assert seen['wsgi.input'].read() == b'{"a": 1}'  # the body unread
    assert memcached.reads == []


def test_a_config_dir_is_read_not_a_500(tmp_path, use_conf, memcached):
    # oslo.config's config_dir is a list: wrapping it in another list made
    # every request a 500 without the header
    conf = use_conf(glance_conf(
        tmp_path, drop_in='[glance_store]\nprogress_key_prefix = dropin-\n'))
    assert conf.config_dir  # what glance gets with a glance-api.conf.d
    glance = FakeGlance()
    glance.image(IMAGE_ID)
    memcached.put(IMAGE_ID, uploading(), prefix='dropin-')
    response = ask(glance)
    assert response.status_int == 200
    assert response.json['state'] == 'uploading'


def test_reads_the_configuration_glance_parsed(tmp_path, use_conf,
                                               memcached):
    # what glance-api's CONF holds, wherever it came from (here a value
    # set in memory, in no file), not a second parse of glance's files
    conf = use_conf(glance_conf(tmp_path,
                                'progress_key_prefix = in-file-\n'))
    # registered as glance_store registers a driver's options in glance
    conf.register_opts(options.OPTIONS, group='glance_store')
    conf.set_override('progress_key_prefix', 'in-conf-',
                      group='glance_store')
    glance = FakeGlance()
    glance.image(IMAGE_ID)
    memcached.put(IMAGE_ID, uploading(), prefix='in-conf-')
    body = ask(glance).json
    assert body['state'] == 'uploading'


def test_keys_of_the_id_glance_returns(conf, memcached):
    # on MySQL an upper-case UUID passes image-show; glance answers its
    # own id, whose keys the store wrote
    glance = FakeGlance()
    glance.image(IMAGE_ID)
    memcached.put(IMAGE_ID, uploading())
    response = ask(glance, IMAGE_ID.upper())
    assert glance.calls[0]['PATH_INFO'] == '/v2/images/%s' % IMAGE_ID.upper()
    assert response.status_int == 200
    assert (response.json['image_id'], response.json['state']) == (
        IMAGE_ID, 'uploading')


def test_an_unreadable_configuration_is_a_503_with_the_header(
        tmp_path, use_conf, memcached):
    use_conf(glance_conf(tmp_path, 'progress_key_prefix = has space\n'))
    glance = FakeGlance()
    glance.image(IMAGE_ID)
    response = ask(glance)
    assert response.status_int == 503
    assert response.headers[HEADER] == '1'
    assert 'progress_key_prefix' in response.json['error']['message']


MULTI = """\
[DEFAULT]
enabled_backends = fast:progress_rbd, slow:progress_rbd, files:file
[backend_defaults]
progress_memcached_servers = %s
[slow]
progress_key_prefix = slow-
""" % SERVER


def test_multi_store_reads_each_backend_as_the_store_does(
        tmp_path, use_conf, memcached):
    conf_file = tmp_path / 'glance-api.conf'
    conf_file.write_text(MULTI)
    conf = cfg.ConfigOpts()
    conf.register_opts(options.FILTER_OPTS, group=options.FILTER_GROUP)
    conf.register_opt(cfg.DictOpt('enabled_backends'))
    conf([], project='glance', prog='glance-api',
         default_config_files=[str(conf_file)])
    use_conf(conf)
    for backend, prefix in (('fast', ''), ('slow', 'slow-')):
        keys = records.keys_for(IMAGE_ID, backend, prefix)
        now = time.time()
        record = records.ProgressRecord('stored', 5, 5, backend, now - 2,
                                        now)
        for key, value in records.key_values(keys, record).items():
            memcached.values[SERVER, key] = _memcache.RawValue(0, value)
    glance = FakeGlance()
    glance.image(IMAGE_ID, 'active')
    body = ask(glance).json
    assert sorted(body['backends']) == ['fast', 'slow']
    assert ask(glance, query='?backend=slow').json['state'] == 'stored'
    bad = ask(glance, query='?backend=files')
    assert bad.status_int == 400 and bad.headers[HEADER] == '1'


def test_reads_the_options_glance_store_registered(tmp_path, use_conf,
                                                   memcached):
    # inside glance-api the store's options are registered already, by
    # glance_store (a backend's group without defaults, falling back to
    # [backend_defaults]): the filter reads them, registering nothing
    # twice
    from glance_progress_store import store
    from glance_store import multi_backend
    conf_file = tmp_path / 'glance-api.conf'
    conf_file.write_text(MULTI)
    conf = cfg.ConfigOpts()
    conf.register_opts(options.FILTER_OPTS, group=options.FILTER_GROUP)
    conf.register_opt(cfg.DictOpt('enabled_backends'))
    conf([], project='glance', prog='glance-api',
         default_config_files=[str(conf_file)])
    multi_backend.register_store_opts(conf)
    for backend in ('fast', 'slow'):  # as create_multi_stores makes them
        store.Store(conf, backend=backend)
    use_conf(conf)
    keys = records.keys_for(IMAGE_ID, 'slow', 'slow-')
    now = time.time()
    record = records.ProgressRecord('uploading', 1, 5, 'slow', now - 2, now)
    for key, value in records.key_values(keys, record).items():
        memcached.values[SERVER, key] = _memcache.RawValue(0, value)
    glance = FakeGlance()
    glance.image(IMAGE_ID)
    body = ask(glance).json
    assert list(body['backends']) == ['slow']
    assert body['backends']['slow']['bytes'] == 1


def test_the_filter_and_glance_progress_share_one_rule(tmp_path, use_conf):
    # the filter reads glance's parsed CONF, glance-progress parses the
    # same files itself: the same settings come out
    from glance_progress_store.read import sources
    (tmp_path / 'glance-api.conf').write_text(MULTI)
    conf_d = tmp_path / 'glance-api.conf.d'
    conf_d.mkdir()
    (conf_d / '50-fast.conf').write_text('[fast]\nprogress_key_prefix = f-\n')
    conf = cfg.ConfigOpts()
    conf.register_opts(options.FILTER_OPTS, group=options.FILTER_GROUP)
    conf([], project='glance', prog='glance-api',
         default_config_files=[str(tmp_path / 'glance-api.conf')],
         default_config_dirs=[str(conf_d)])
    use_conf(conf)
    expected = sources.load_settings([str(tmp_path / 'glance-api.conf')],
                                     [str(conf_d)])
    assert expected.backends['fast'].prefix == 'f-'
    assert middleware._process_state().settings == expected
