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

"""``GET /v2/images/{image_id}/progress``: upload progress through glance.

A paste filter for glance-api's pipeline, after ``context``::

    [filter:upload_progress]
    paste.filter_factory = glance_progress_store.middleware:UploadProgressFilter.factory

It answers only ``GET`` and ``HEAD`` of that path; every other request
goes to glance untouched, its body never read. Whether the caller may
see the image is glance's own decision: the filter sends ``GET
/v2/images/{image_id}`` down the rest of the pipeline with the caller's
request context, and answers glance's own response (404, 403, ...)
unless it is a 200, so the endpoint never tells more than image-show.

The records are read from the memcached servers and key prefix that
glance-api's store uses: the filter reads glance-api's own
configuration (oslo.config's ``CONF``, as glance parsed it: command
line, files, drop-in directories), by the rule ``glance-progress`` uses
for the same files (:func:`glance_progress_store.read.sources.settings_of`),
once per process: uWSGI loads the application, then forks its workers.

A memcached server that did not answer is known down for ``[upload_progress]
memcached_dead_retry`` seconds (:mod:`glance_progress_store.read.breaker`,
one per process): meanwhile the requests that need it are answered 503
with ``Retry-After`` at once, so pollers never hold glance-api's workers.
"""  # noqa: E501

import dataclasses
import json
import logging
import math
import os
import re
import threading
import time

from oslo_config import cfg
import webob
import webob.exc

from glance_progress_store import _memcache
from glance_progress_store import options
from glance_progress_store.read import breaker
from glance_progress_store.read import reader
from glance_progress_store.read import sources
from glance_progress_store.read import states
from glance_progress_store import records

LOG = logging.getLogger(__name__)

HEADER = records.HEADER
# After versionnegotiation, any /v2.N/ path is /v2/. The id is anything
# without a slash, as glance's router takes it.
_PATH = re.compile(r'\A/v2/images/([^/]+)/progress/?\Z')
_METHODS = ('GET', 'HEAD')

CONF = cfg.CONF
CONF.register_opts(options.FILTER_OPTS, group=options.FILTER_GROUP)


class _ProcessState:
    """Where this process reads records, with one reader per thread and
    one breaker for all."""

    def __init__(self, conf):
        try:
            group = conf[options.FILTER_GROUP]
            self.stall_after = group.stall_after
            self.socket_timeout = group.memcached_socket_timeout
            dead_retry = group.memcached_dead_retry
        except (cfg.Error, ValueError) as e:
            raise sources.ConfigError('[%s]: %s' % (options.FILTER_GROUP, e))
        self.breaker = breaker.Breaker(dead_retry)
        self.retry_after = max(1, math.ceil(dead_retry))
        self.settings = sources.settings_of(
            conf, warn=lambda text: LOG.warning('%s', text))
        self._local = threading.local()

    def reader(self, source):
        readers = self._local.__dict__.setdefault('readers', {})
        found = readers.get(source)
        if found is None:
            found = readers[source] = reader.ProgressReader(
                source.servers, source.prefix, self.socket_timeout,
                breaker=self.breaker)
        return found


_STATE = None
_STATE_LOCK = threading.Lock()


def _process_state():
    global _STATE
    state = _STATE
    if state is not None:  # no lock once it is made
        return state
    with _STATE_LOCK:
        if _STATE is None:
            _STATE = _ProcessState(CONF)
        return _STATE


def _forget_state_after_fork():
    # A forked worker (uWSGI) opens its own connections, as the
    # publisher does (upload.publisher): not its parent's readers.
    global _STATE, _STATE_LOCK
    _STATE = None
    _STATE_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_state_after_fork)


class Unavailable(Exception):
    """memcached did not answer, or is known down: a 503."""

    def __init__(self, message, retry_after):
        super().__init__(message)
        self.retry_after = retry_after


class UploadProgressFilter:
    """Serves the progress endpoint; holds no per-request state."""

    def __init__(self, application):
        self.application = application

    @classmethod
    def factory(cls, global_conf, **local_conf):
        """paste.filter_factory."""
        def make_filter(application):
            return cls(application)
        return make_filter

    def __call__(self, environ, start_response):
        match = _PATH.match(environ.get('PATH_INFO', ''))
        if match is None or environ.get('REQUEST_METHOD') not in _METHODS:
            return self.application(environ, start_response)
        request = webob.Request(environ)
        try:
            response = self._progress(request, match.group(1))
        except Exception:
            # still with the header: the client must not conclude that
            # this glance has no progress endpoint
            LOG.exception('Upload progress of %r failed', match.group(1))
            response = _error(webob.exc.HTTPInternalServerError,
                              'upload progress failed; glance-api\'s log '
                              'says why')
        response.headers[HEADER] = '1'
        return response(environ, start_response)

    def _progress(self, request, url_id):
        image = self._glance_image(request, url_id)
        if image.status_int != 200:
            return image  # glance's own answer: 404 for an unseen image
        try:
            shown = json.loads(image.body)
            # the keys were written for glance's id, which may differ from
            # the URL's (an upper-case UUID that MySQL matches)
            image_id, image_status = shown['id'], shown['status']
            if not isinstance(image_id, str):
                raise TypeError(image_id)
        except (ValueError, KeyError, TypeError):
            LOG.error('glance answered image-show of %r with a body that '
                      'is not an image', url_id)
            return _error(webob.exc.HTTPBadGateway,
                          'glance returned an unexpected image body')
        try:
            state = _process_state()
        except sources.ConfigError as e:
            LOG.error('Upload progress: cannot read glance-api\'s '
                      'configuration: %s', e)
            return _error(webob.exc.HTTPServiceUnavailable,
                          'upload progress is not configured: %s' % e)
        backend = request.GET.get('backend')
        if backend is not None and backend not in state.settings.backends:
            return _error(webob.exc.HTTPBadRequest,
                          'backend %r is not a progress_rbd backend of this '
                          'glance' % backend)
        try:
            body = self._body(state, image_id, image_status, backend)
        except Unavailable as e:
            response = _error(webob.exc.HTTPServiceUnavailable, str(e))
            response.retry_after = e.retry_after
            return response
        response = webob.Response(
            json.dumps(body), content_type='application/json',
            charset='utf-8')
        response.cache_control = 'no-cache'
        return response

    def _glance_image(self, request, image_id):
        """glance's image-show for the caller, through the pipeline."""
        environ = dict(request.environ)
        environ.update({
            'REQUEST_METHOD': 'GET',
            'PATH_INFO': '/v2/images/%s' % image_id,
            'QUERY_STRING': '',
            'CONTENT_LENGTH': '0',
        })
        environ.pop('CONTENT_TYPE', None)
        sub = webob.Request(environ)
        sub.body = b''
        return sub.get_response(self.application)

    def _body(self, state, image_id, image_status, backend):
        now = time.time()
        found = [(name, self._read(state, source, image_id, name, now))
                 for name, source in state.settings.targets(backend)]
        plain = [view for name, view in found if name is None]
        # the plain keys hold the image's latest upload in any source
        first = (max(plain, key=lambda v: v.updated_at or 0.0) if plain
                 else found[0][1])
        body = _fields(first, image_status)
        if backend is None and state.settings.backends:
            body['backends'] = {
                name: _fields(view, image_status)
                for name, view in found
                if name is not None and view.state != states.UNKNOWN}
        return body

    def _read(self, state, source, image_id, backend, now):
        try:
            return reader.record_view(
                image_id, backend,
                lambda: state.reader(source).get(image_id, backend),
                now, state.stall_after)
        except breaker.KnownDown as e:  # said once, by the breaker
            raise Unavailable('upload progress is unavailable: %s' % e,
                              e.retry_after)
        except _memcache.ServerUnavailable as e:
            LOG.warning('Upload progress of %s: %s', image_id, e)
            raise Unavailable('upload progress is unavailable: %s' % e,
                              state.retry_after)


def _fields(view, image_status):
    """The fields of ``glance-progress show --json`` and two more."""
    data = dataclasses.asdict(view)
    data['image_status'] = image_status
    data['stalled'] = view.state == states.STALLED
    return data


def _error(kind, message):
    response = kind()
    response.content_type = 'application/json'
    response.charset = 'utf-8'
    response.body = json.dumps({'error': {
        'code': response.status_int, 'title': response.status.split(' ', 1)[1],
        'message': message}}).encode('utf-8')
    return response
