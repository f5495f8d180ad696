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

"""One small HTTP client of glance for ``openstack image progress``.

Every command goes through it, so the answers that are errors (glance
without the filter, memcached down, no such image) become one clear
:class:`osc_lib.exceptions.CommandError` each, never a traceback. It only
needs a keystoneauth session and glance's endpoint URL.
"""

import re
import urllib.parse

from keystoneauth1 import exceptions as ksa_exc
from osc_lib import exceptions

from glance_progress_store import records

# glance's image statuses while data is on its way into a store (not this
# package's states: glance's own).
UPLOADING_IMAGE_STATUSES = ('saving', 'importing', 'uploading')
_VERSIONED = re.compile(r'/v2(\.\d+)?/*\Z')
_UUID = re.compile(r'\A[0-9a-f]{8}(-?[0-9a-f]{4}){3}-?[0-9a-f]{12}\Z',
                   re.IGNORECASE)


class NotFound(exceptions.CommandError):
    """No such image, or not one the caller may see."""


class NoProgressEndpoint(exceptions.CommandError):
    """glance answered without the filter's header: no image has progress
    there, so a list says it once instead of once per row."""


class ProgressClient:
    """glance's image list and image-show, and the progress endpoint."""

    def __init__(self, session, endpoint):
        if not endpoint:
            raise exceptions.CommandError(
                'no image (glance) endpoint: none in the catalog for this '
                'interface and region, and no --os-endpoint')
        self.session = session
        # a catalog may hold glance's versioned URL
        self.base = _VERSIONED.sub('', endpoint.rstrip('/'))

    def _get(self, path, params=None):
        url = self.base + path
        try:
            return self.session.get(url, params=params, raise_exc=False,
                                    headers={'Accept': 'application/json'})
        except ksa_exc.ClientException as e:
            raise exceptions.CommandError('glance at %s: %s' % (self.base, e))

    def project_id(self):
        """The caller's project, or None (``--os-auth-type none``)."""
        return self.session.get_project_id()

    def images(self, **filters):
        """Every image glance lists to the caller with `filters`."""
        found = []
        path, params = '/v2/images', dict(filters, limit=100)
        while path:
            body = _json(self._get(path, params), 'the image list')
            found += body.get('images', [])
            # `next` is glance's path with the marker, from its root
            path, params = body.get('next'), None
        return found

    def find_image(self, name_or_id):
        """glance's id of an image, given its id or its name.

        The id as glance answers it, not as typed: glance's database may
        match an id in another case (MySQL), and the later calls must
        name the image as glance does.
        """
        if _UUID.match(name_or_id):
            response = self._get('/v2/images/%s' % name_or_id)
            if response.status_code == 200:
                image = _json(response, 'image %s' % name_or_id)
                return image.get('id', name_or_id)
        matches = self.images(name=name_or_id)
        if not matches:
            raise NotFound(
                'No image with a name or ID of %r exists.' % name_or_id)
        if len(matches) > 1:
            raise exceptions.CommandError(
                'More than one image is named %r (%s): give its ID.'
                % (name_or_id, ', '.join(i['id'] for i in matches)))
        return matches[0]['id']

    def progress(self, image_id, backend=None):
        """The endpoint's JSON of one image."""
        params = {'backend': backend} if backend else None
        response = self._get('/v2/images/%s/progress'
                             % urllib.parse.quote(image_id, safe=''),
                             params)
        if records.HEADER not in response.headers:
            raise NoProgressEndpoint(
                'glance at %s does not serve upload progress (HTTP %d to '
                'GET /v2/images/%s/progress): the upload_progress filter of '
                'glance_progress_store is not enabled in its pipeline'
                % (self.base, response.status_code, image_id))
        if response.status_code == 404:
            raise NotFound(
                'No image with ID %s exists (or it is not visible to you).'
                % image_id)
        return _json(response, 'the upload progress of %s' % image_id)


def _json(response, what):
    """The JSON of a 200, or the error glance or the filter answered."""
    if response.status_code == 200:
        try:
            return response.json()
        except ValueError:
            raise exceptions.CommandError(
                'glance answered %s with a body that is not JSON' % what)
    raise exceptions.CommandError(
        'glance could not give %s: HTTP %d: %s'
        % (what, response.status_code, _message(response)))


def _message(response):
    """The message of the filter's JSON error, or of glance's own body."""
    try:
        error = response.json()['error']
        return '%s: %s' % (error['title'], error['message'])
    except (ValueError, KeyError, TypeError):
        text = ' '.join(response.text.split())
        return text[:300] or response.reason
