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

"""The exporter's live page, and the JSON it shows.

The page is one self-contained document, ``page.html`` beside this
module (package data, so it lints and diffs as HTML): inline CSS and
JavaScript only, no external script, font or CDN, allowed by a
Content-Security-Policy that names their hashes and lets the page fetch
nothing but ``uploads.json`` from its own origin. Every value from
memcached is put in the page with ``textContent``, never as HTML.
"""

import base64
import dataclasses
import hashlib
import importlib.resources
import re

PAGE = importlib.resources.files(__package__).joinpath(
    'page.html').read_bytes()
_TEXT = PAGE.decode('utf-8')
STYLE = re.search(r'<style>(.*?)</style>', _TEXT, re.S).group(1)
SCRIPT = re.search(r'<script>(.*?)</script>', _TEXT, re.S).group(1)


def _hash(text):
    digest = hashlib.sha256(text.encode('utf-8')).digest()
    return "'sha256-%s'" % base64.b64encode(digest).decode('ascii')


CSP = ("default-src 'none'; script-src %s; style-src %s; "
       "connect-src 'self'; img-src data:; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'"
       % (_hash(SCRIPT), _hash(STYLE)))


def uploads_document(status, now, since=None):
    """The JSON of ``/uploads.json``: what the page shows, in discovery's
    order (what needs an operator first)."""
    snapshot = status.snapshot
    return {
        'now': now,
        'taken_at': snapshot.taken_at if snapshot else None,
        'since_s': since,
        'views': ([dataclasses.asdict(v) for v in snapshot.views]
                  if snapshot else []),
        'unreadable': dict(snapshot.unreadable) if snapshot else {},
        'servers': sorted(status.servers),
        'refresh_error': status.refresh_error,
    }
