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

"""``show --wait``: poll glance's progress endpoint until the upload ends.

The display is ``glance-progress watch``'s (bars on a terminal, one line
per change otherwise); only the reading differs: over HTTP, with glance's
image status to tell an upload yet to start from one that never will.
"""

import dataclasses

from glance_progress_store.cmd import follow
from glance_progress_store.osc import http
from glance_progress_store.read import states
from glance_progress_store.read import views
# What is shown while an image has no record but may still get one.
_MAY_START = ('queued',) + http.UPLOADING_IMAGE_STATUSES

# (code, meaning) of ``show --wait``: glance-progress watch's codes.
WAIT_CODES = (
    (states.EXIT_OK, 'the upload %s' % states.STORED),
    (states.EXIT_FAILED, 'the upload %s; also any error of the command '
     '(its message on stderr)' % states.FAILED),
    (states.EXIT_STALLED, 'the upload %s: no update for the stack\'s '
     'stall_after seconds' % states.STALLED),
    (states.EXIT_UNKNOWN, 'no record while the image cannot get one any '
     'more (%s), or a value this package did not write (%s)'
     % (states.UNKNOWN, states.BAD)),
    (states.EXIT_TIMEOUT, '--timeout reached before the upload ended'),
    (states.EXIT_INTERRUPTED, 'interrupted (Ctrl-C)'),
)


def shown(body):
    """The views of one answer: each backend's in multi-store, and
    ``waiting`` for an image that has no record yet but may get one."""
    found = [views.from_fields(b) for _, b in
             sorted((body.get('backends') or {}).items())]
    if not found:
        found = [views.from_fields(body)]
    if body.get('image_status') in _MAY_START:
        found = [dataclasses.replace(v, state=states.WAITING)
                 if v.state == states.UNKNOWN else v for v in found]
    return found


def until_final(client, image_id, out, backend=None, interval=2.0,
                timeout=None):
    """Poll until every view is final or `timeout`; (last body, code)."""
    last = {}

    def poll():
        body = last['body'] = client.progress(image_id, backend)
        now = shown(body)
        return now, all(v.state not in states.ACTIVE + (states.WAITING,)
                        for v in now)

    code = follow.follow(poll, out, interval, timeout)
    return last['body'], code
