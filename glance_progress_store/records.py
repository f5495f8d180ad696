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

"""The memcached layout of progress records, shared by writer and readers.

For an upload of image ``ID`` the store writes three keys (``PREFIX`` is
``progress_key_prefix``, empty by default):

``PREFIX ID_total_size``
    The declared size in bytes as ASCII decimal; 0 while the size is
    unknown, the real size once the upload is stored.
``PREFIX ID_uploading_size``
    Bytes stored in Ceph so far, as ASCII decimal.
``PREFIX ID_upload_status``
    A UTF-8 JSON object with the fields of :class:`ProgressRecord`.

Every value is stored with memcached flags 0 (plain bytes), so that any
memcached client reads it as it is: python-memcached's own flags for
integers (2) and text (16) mean "compressed" to PHP's and Java's clients.

In a multi-store deployment the same image may be written to several
backends at once (copy-image, import to several stores), so each upload
also writes the same three keys under ``PREFIX ID@BACKEND``; the plain
keys always describe the most recently updated upload of the image.

Discovery (which uploads are in flight, without knowing their ids) adds
two kinds of keys, both written to one server each, never spread by
key:

``PREFIX glance_progress_index.TOKEN``
    One per glance-api process and server, written only by that process:
    a JSON object (:func:`index_value`) listing its uploads whose status
    key lives on that server, each with ``ended_at`` (null while in
    flight). Re-written every third of its TTL while the process lives,
    so a killed process's index expires.
``PREFIX glance_progress_registry``
    One per server: a JSON object ``{"indexes": {KEY: registered_at}}``
    of the index keys on that server, changed with ``gets``/``cas`` only
    when a process starts or stops.

How the contract grows (:data:`VERSION` is 1):

* A writer may add a field to the status object, an index or the
  registry, or an item to the end of an index entry, without a version
  change. Readers ignore what they do not know and keep checking the
  fields they do, so during a rolling upgrade across glance-api nodes
  every reader shows every upload.
* Removing or renaming a field, changing its type or meaning, adding a
  state or changing the keys needs a new version: the writer then adds
  ``"v": 2`` (absent means 1), and readers of this release report such a
  record as written by a newer, incompatible release instead of guessing.

Keys that memcached cannot take (whitespace, control or non-ASCII
characters, longer than 250 bytes) have the ``ID`` or ``ID@BACKEND`` part
replaced by ``sha256-`` and its hex digest, so writers and readers derive
the same key from the same id.
"""

import dataclasses
import hashlib
import json

#: The version of the contract this release writes and reads.
VERSION = 1
#: The name of the driver, in ``stores`` and ``enabled_backends``.
SCHEME = 'progress_rbd'
#: The header on every answer of ``GET /v2/images/{id}/progress``: a
#: glance without the paste filter answers that path with a plain 404.
HEADER = 'OpenStack-Upload-Progress'

TOTAL_SUFFIX = '_total_size'
UPLOADING_SUFFIX = '_uploading_size'
STATUS_SUFFIX = '_upload_status'

UPLOADING = 'uploading'
FINALIZING = 'finalizing'
STORED = 'stored'
FAILED = 'failed'
STATES = (UPLOADING, FINALIZING, STORED, FAILED)
#: The states of an upload that has not ended.
ACTIVE = (UPLOADING, FINALIZING)

# Why an upload failed: the ``reason`` of a failed record.
SOURCE_ERROR = 'source_error'  # the client's data stream broke
VERIFIER_FAILED = 'verifier_failed'  # the signature verifier refused it
SIZE_MISMATCH = 'size_mismatch'  # more or fewer bytes than declared
STORAGE_FULL = 'storage_full'  # pool or cluster full or over quota
STORAGE_TIMEOUT = 'storage_timeout'  # Ceph did not answer in time
STORAGE_ERROR = 'storage_error'  # any other Ceph or store error
INTERRUPTED = 'interrupted'  # the worker was stopped mid-upload
REASONS = (SOURCE_ERROR, VERIFIER_FAILED, SIZE_MISMATCH, STORAGE_FULL,
           STORAGE_TIMEOUT, STORAGE_ERROR, INTERRUPTED)

MAX_KEY_LENGTH = 250
_LONGEST_SUFFIX = max(len(TOTAL_SUFFIX), len(UPLOADING_SUFFIX),
                      len(STATUS_SUFFIX))


class BadRecord(ValueError):
    """A value in memcached that this package did not write."""


@dataclasses.dataclass(frozen=True)
class Keys:
    total: str
    uploading: str
    status: str

    def all(self):
        return (self.total, self.uploading, self.status)


MAX_PREFIX_LENGTH = 100


def is_key_safe(text):
    """memcached's rule for key characters: printable ASCII, no space."""
    return all(33 <= ord(ch) <= 126 for ch in text)


def check_prefix(prefix):
    """Why ``prefix`` cannot start a key, or None if it can."""
    if not is_key_safe(prefix):
        return 'must be printable ASCII without whitespace'
    if len(prefix) > MAX_PREFIX_LENGTH:
        return 'must be at most %d characters' % MAX_PREFIX_LENGTH
    return None


def keys_for(image_id, backend=None, prefix=''):
    """The three keys of one image, or of one image in one backend."""
    name = str(image_id) if backend is None else '%s@%s' % (image_id, backend)
    base = prefix + name
    if (not is_key_safe(base) or
            len(base.encode('utf-8')) + _LONGEST_SUFFIX > MAX_KEY_LENGTH):
        digest = hashlib.sha256(name.encode('utf-8', 'surrogatepass'))
        base = prefix + 'sha256-' + digest.hexdigest()
    return Keys(base + TOTAL_SUFFIX, base + UPLOADING_SUFFIX,
                base + STATUS_SUFFIX)


@dataclasses.dataclass(frozen=True)
class ProgressRecord:
    """What ``<image_id>_upload_status`` holds, field for field."""

    state: str
    bytes: int
    total: object  # int, or None while the size is unknown
    backend: object  # str in multi-store, else None
    started_at: float
    updated_at: float
    reason: object = None  # None, or a short code when state is failed

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), sort_keys=True,
                          separators=(',', ':'))

    @property
    def percent(self):
        if self.total is None:
            return None
        if self.total == 0:  # a stored empty image
            return 100.0 if self.state == STORED else None
        return min(100.0, 100.0 * self.bytes / self.total)

    @classmethod
    def from_json(cls, text):
        """Parse and check a status value; BadRecord if it is not ours.

        Fields this release does not know are ignored (a newer writer may
        add them); the known ones must all be there, with their types.
        """
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as e:
            raise BadRecord('not JSON: %s' % e)
        if not isinstance(data, dict):
            raise BadRecord('not a progress record: not a JSON object')
        _check_version(data)
        fields = [f.name for f in dataclasses.fields(cls)]
        missing = [name for name in fields if name not in data]
        if missing:
            raise BadRecord('not a progress record: no %s'
                            % ', '.join(missing))
        checks = (
            ('state', lambda v: v in STATES),
            ('bytes', lambda v: _is_int(v) and v >= 0),
            ('total', lambda v: v is None or (_is_int(v) and v >= 0)),
            ('backend', lambda v: v is None or isinstance(v, str)),
            ('started_at', _is_number),
            ('updated_at', _is_number),
            ('reason', lambda v: v is None or isinstance(v, str)),
        )
        for name, check in checks:
            if not check(data[name]):
                raise BadRecord('bad value for %s: %r' % (name, data[name]))
        return cls(**{name: data[name] for name in fields})


def _check_version(data):
    version = data.get('v', VERSION)
    if version != VERSION:
        raise BadRecord('written by a release of another contract version '
                        '(v=%r; this release reads v=%d): upgrade the '
                        'reader' % (version, VERSION))


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def key_values(keys, record):
    """The memcached values of a record: bytes, stored with flags 0.

    Sizes are ASCII decimal, the status UTF-8 JSON. Nothing is pickled.
    """
    total = record.total if record.total is not None else 0
    return {keys.total: b'%d' % total,
            keys.uploading: b'%d' % record.bytes,
            keys.status: record.to_json().encode('utf-8')}


REGISTRY_NAME = 'glance_progress_registry'
INDEX_NAME = 'glance_progress_index.'
MAX_INDEX_LENGTH = 512 * 1024  # memcached's items are 1 MiB at most


def registry_key(prefix=''):
    return prefix + REGISTRY_NAME


def index_key(prefix, token):
    return prefix + INDEX_NAME + token


def _load(what, data, limit):
    if len(data) > limit:
        raise BadRecord('%s of %d bytes is too large' % (what, len(data)))
    try:
        return json.loads(data.decode('utf-8'))
    except (UnicodeDecodeError, ValueError) as e:
        raise BadRecord('%s is not JSON: %s' % (what, e))


def registry_value(indexes):
    """The registry's bytes: ``{index key: registered_at}``."""
    return json.dumps({'indexes': indexes}, sort_keys=True,
                      separators=(',', ':')).encode('utf-8')


def parse_registry(data):
    """``{index key: registered_at}``; BadRecord if not a registry."""
    value = _load('the registry', data, MAX_INDEX_LENGTH)
    if isinstance(value, dict):
        _check_version(value)
    indexes = value.get('indexes') if isinstance(value, dict) else None
    if not isinstance(indexes, dict) or not all(
            isinstance(k, str) and _is_number(v)
            for k, v in indexes.items()):
        raise BadRecord('not a progress registry')
    return indexes


@dataclasses.dataclass(frozen=True)
class IndexEntry:
    """An upload a glance-api process has in hand, or had recently."""

    image_id: str
    backend: object  # str in multi-store, else None
    ended_at: object = None  # epoch seconds once stored or failed


def index_value(host, pid, updated_at, entries):
    """An index's bytes."""
    return json.dumps({
        'host': host, 'pid': pid, 'updated_at': updated_at,
        'uploads': [[e.image_id, e.backend, e.ended_at] for e in entries],
    }, separators=(',', ':')).encode('utf-8')


def parse_index(data):
    """The IndexEntry list of an index; BadRecord if not an index."""
    value = _load('an index', data, MAX_INDEX_LENGTH)
    uploads = value.get('uploads') if isinstance(value, dict) else None
    if not isinstance(uploads, list):
        raise BadRecord('not a progress index')
    _check_version(value)
    entries = []
    for item in uploads:
        # items after the third are a newer writer's: ignored
        if not (isinstance(item, list) and len(item) >= 3 and
                isinstance(item[0], str) and
                (item[1] is None or isinstance(item[1], str)) and
                (item[2] is None or _is_number(item[2]))):
            raise BadRecord('bad index entry: %r' % (item,))
        entries.append(IndexEntry(*item[:3]))
    return entries
