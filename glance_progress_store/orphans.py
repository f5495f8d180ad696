"""``glance-progress orphans``: partial uploads left behind in Ceph.

Every upload the ``progress_rbd`` store finishes ends with a protected
snapshot ``snap`` on its RBD image (the ``rbd://FSID/POOL/IMAGE/snap``
location points at it). An image without it is an upload that has not
finished: one still running, or one whose glance-api worker died (a
SIGKILLed or OOM-killed uWSGI worker never reaches the store's cleanup),
or one whose cleanup failed. This module finds such images in the pools
and classifies each with its progress record, which the CLI reads through
:class:`~glance_progress_store.reader.ProgressReader` (never unpickling).

It never deletes anything: it says which ``rbd`` command to run once the
operator has checked that glance does not use the image.

Ceph's Python bindings are imported here, on first use, so that ``show``
and ``watch`` work on hosts without them.
"""

import calendar
import dataclasses
import json
import shlex

from glance_progress_store import records

SNAPSHOT = 'snap'  # the store's (and the stock RBD store's) snapshot name

# What an unfinished image is.
IN_PROGRESS = 'in progress'  # record uploading/finalizing, recent
NEW = 'new'  # no record, created less than --stall-after ago
STALLED = 'stalled'  # record uploading/finalizing, too old: worker died
FAILED = 'failed'  # record failed, image still there: cleanup failed
NO_RECORD = 'no record'  # record expired, or progress disabled
BAD = 'bad'  # a record this package did not write
INCONSISTENT = 'inconsistent'  # record stored, image without its snapshot
UNREACHABLE = 'unreachable'  # memcached (image) or Ceph (pool) unreachable
NO_POOL = 'no pool'  # the pool does not exist

ORPHAN_STATES = (STALLED, FAILED, NO_RECORD, BAD, INCONSISTENT)
JSON_FIELDS = ('pool', 'image', 'state', 'bytes', 'total', 'age_s',
               'record_state', 'reason', 'error')

_ACTIVE = (records.UPLOADING, records.FINALIZING)


class BindingsMissing(Exception):
    """Ceph's Python bindings (python3-rados, python3-rbd) are missing."""


def ceph_modules():
    """(rados, rbd), imported now; BindingsMissing with the fix if absent."""
    try:
        import rados
        import rbd
    except ImportError as e:
        raise BindingsMissing(
            'the orphans check needs Ceph\'s Python bindings, which are not '
            'importable here (%s): install python3-rados and python3-rbd '
            '(Debian/Ubuntu), or run it with the Python of glance-api' % e)
    return rados, rbd


# --- Where to look -----------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Target(object):
    """A pool to check, how to reach it and where its records are.

    ``records_at`` lists (source, backend) pairs to read an image's record
    from, first found wins: the backend's own keys in multi-store, the
    plain keys otherwise. ``ceph_conf`` and ``user`` are passed to librados
    as glance_store passes them, except that an unset user is librados'
    default (``client.admin``, or ``CEPH_ARGS``), not the string 'None'.
    """

    pool: str
    ceph_conf: str = ''
    user: object = None
    backend: object = None
    records_at: tuple = ()

    @property
    def cluster(self):
        return (self.ceph_conf, self.user)


# --- Reading Ceph --------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Partial(object):
    """An RBD image without the protected snapshot of a finished upload."""

    target: Target
    name: str
    created_at: object  # epoch seconds, None if Ceph does not say
    snapshots: tuple  # names of its snapshots (an unprotected 'snap'...)


@dataclasses.dataclass(frozen=True)
class PoolProblem(object):
    target: Target
    state: str  # UNREACHABLE or NO_POOL
    message: str


class CephError(Exception):
    """Ceph could not be reached or refused; the message says how."""


class Ceph(object):
    """Connections to the clusters of the targets, opened on demand.

    Every librados operation is bounded by ``timeout`` seconds, so a dead
    monitor or a blocked OSD makes the check fail instead of hanging.
    """

    def __init__(self, timeout):
        self.rados, self.rbd = ceph_modules()
        self.timeout = timeout
        self._clients = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for client in self._clients.values():
            client.shutdown()
        self._clients.clear()

    def _client(self, target):
        client = self._clients.get(target.cluster)
        if client is not None:
            return client
        t = str(max(1, int(round(self.timeout))))
        try:
            client = self.rados.Rados(
                conffile=target.ceph_conf, rados_id=target.user,
                conf={'client_mount_timeout': t, 'rados_mon_op_timeout': t,
                      'rados_osd_op_timeout': t})
        except self.rados.Error as e:
            raise CephError('cannot read the Ceph configuration %s: %s'
                            % (target.ceph_conf or '(default)', e))
        try:
            client.connect()
        except self.rados.Error as e:
            client.shutdown()
            raise CephError(
                'cannot connect to Ceph with %s as %s: %s'
                % (target.ceph_conf or 'the default ceph.conf',
                   'client.' + target.user if target.user
                   else 'the default user', e))
        self._clients[target.cluster] = client
        return client

    def scan(self, target):
        """(number of images, [Partial]) or a PoolProblem."""
        try:
            client = self._client(target)
        except CephError as e:
            return PoolProblem(target, UNREACHABLE, str(e))
        try:
            with client.open_ioctx(target.pool) as ioctx:
                names = self.rbd.RBD().list(ioctx)
                partial = [p for p in (self._inspect(ioctx, target, name)
                                       for name in names) if p is not None]
        except self.rados.ObjectNotFound as e:
            return PoolProblem(target, NO_POOL, 'pool %s: %s'
                               % (target.pool, e))
        except (self.rados.Error, self.rbd.Error) as e:
            return PoolProblem(target, UNREACHABLE, 'pool %s: %s'
                               % (target.pool, e))
        return len(names), partial

    def _inspect(self, ioctx, target, name):
        """A Partial, or None for a finished (or vanished) image."""
        try:
            with self.rbd.Image(ioctx, name, read_only=True) as image:
                snapshots = tuple(s['name'] for s in image.list_snaps())
                if (SNAPSHOT in snapshots and
                        image.is_protected_snap(SNAPSHOT)):
                    return None
                return Partial(target, name, _created_at(image), snapshots)
        except self.rbd.ImageNotFound:
            return None  # removed since it was listed: not our concern

    def still_partial(self, partial):
        """Checked again after reading a record that says stored."""
        try:
            client = self._client(partial.target)
            with client.open_ioctx(partial.target.pool) as ioctx:
                return self._inspect(ioctx, partial.target,
                                     partial.name) is not None
        except (CephError, self.rados.Error, self.rbd.Error):
            return True  # as it was seen: report it


def _created_at(image):
    try:
        stamp = image.create_timestamp()  # a naive datetime, in UTC
    except Exception:  # older librbd, or an image format without it
        return None
    return float(calendar.timegm(stamp.utctimetuple()))


# --- Classifying ---------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Finding(object):
    """One line of the report: an unfinished image, or a pool problem."""

    pool: str
    image: object  # None for a pool problem
    state: str
    bytes: object = None
    total: object = None
    age_s: object = None  # since the record's update; else the creation
    record_state: object = None
    reason: object = None
    error: object = None
    target: object = dataclasses.field(default=None, compare=False)
    snapshots: tuple = dataclasses.field(default=(), compare=False)

    @property
    def orphan(self):
        return self.state in ORPHAN_STATES

    def to_json(self):
        return json.dumps({name: getattr(self, name)
                           for name in JSON_FIELDS})


def classify(partial, record, now, stall_after, error_state=None,
             error=None):
    """What an unfinished image is, given its record (or why there is none).

    ``error_state`` is BAD or UNREACHABLE when the record could not be
    read, with ``error`` the message.
    """
    common = dict(pool=partial.target.pool, image=partial.name,
                  target=partial.target, snapshots=partial.snapshots)
    if error_state is not None:
        return Finding(state=error_state, error=error,
                       age_s=_age(now, partial.created_at), **common)
    if record is None:
        young = (partial.created_at is not None and
                 now - partial.created_at < stall_after)
        return Finding(state=NEW if young else NO_RECORD,
                       age_s=_age(now, partial.created_at), **common)
    age = _age(now, record.updated_at)
    if record.state in _ACTIVE:
        stalled = now - record.updated_at > stall_after
        state = STALLED if stalled else IN_PROGRESS
    elif record.state == records.FAILED:
        state = FAILED
    else:  # stored, yet the snapshot is not there (anymore)
        state = INCONSISTENT
    return Finding(state=state, bytes=record.bytes, total=record.total,
                   age_s=age, record_state=record.state,
                   reason=record.reason, **common)


def _age(now, then):
    return None if then is None else round(max(0.0, now - then), 1)


def pool_finding(problem):
    return Finding(pool=problem.target.pool, image=None,
                   state=problem.state, error=problem.message,
                   target=problem.target)


# --- Reporting -----------------------------------------------------------

def shell_word(text):
    """`text` quoted for a POSIX shell (bash's $'...' for control chars)."""
    if all(ch.isprintable() for ch in text):
        return shlex.quote(text)
    escaped = ''.join(
        '\\' + ch if ch in '\\\'' else
        ch if ch.isprintable() else '\\x%02x' % ord(ch) if ord(ch) < 256
        else '\\u%04x' % ord(ch) if ord(ch) < 0x10000 else '\\U%08x' % ord(ch)
        for ch in text)
    return "$'%s'" % escaped


def rbd_commands(finding):
    """The commands that remove an orphan's RBD image, once checked."""
    target = finding.target
    base = ['rbd']
    if target.ceph_conf:
        base += ['-c', target.ceph_conf]
    if target.user:
        base += ['--id', target.user]
    base += ['-p', target.pool]
    image = shell_word(finding.image)
    words = ' '.join(shlex.quote(w) for w in base)
    commands = []
    if finding.snapshots:  # an unprotected 'snap': died while finalizing
        commands.append('%s snap purge %s' % (words, image))
    commands.append('%s rm %s' % (words, image))
    return commands


def action(finding):
    """The short advice of the table's last column."""
    state = finding.state
    if state == IN_PROGRESS:
        return 'none: upload in progress'
    if state == NEW:
        return 'none yet: just created, its first record may be on its way'
    if state == STALLED:
        return 'remove: its glance-api worker died'
    if state == FAILED:
        return 'remove: the cleanup after the failure (%s) failed' % (
            finding.reason or 'no reason')
    if state == UNREACHABLE and finding.image is None:
        return 'check Ceph: %s' % finding.error
    if state == UNREACHABLE:
        return 'run again once memcached answers: %s' % finding.error
    if state == NO_POOL:
        return 'check rbd_store_pool or --pool: %s' % finding.error
    if state == BAD:
        return 'check in glance, then remove: %s' % finding.error
    if state == INCONSISTENT:
        return 'check in glance, then remove: record stored, no snapshot'
    return 'check in glance, then remove'  # no record


def printable(text):
    """A name as it can be shown on one line: control characters escaped."""
    return ''.join(ch if ch.isprintable() else
                   ch.encode('unicode_escape').decode('ascii')
                   for ch in text)


def summary(findings, counted):
    """``3 unfinished of 120 images in images, images2: 2 orphans ...``."""
    pools = ', '.join(sorted({pool for pool, _ in counted}))
    images = [f for f in findings if f.image is not None]
    orphans = [f for f in images if f.orphan]
    text = '%d unfinished of %d images in %s: %d orphan%s' % (
        len(images), sum(n for _, n in counted), pools or 'no pool',
        len(orphans), '' if len(orphans) == 1 else 's')
    if orphans:
        text += ' (%s)' % _counts(orphans)
    others = [f for f in images if not f.orphan]
    if others:
        text += ', ' + _counts(others)
    problems = [f for f in findings if f.image is None]
    if problems:
        text += '. Not checked: %s' % ', '.join(
            '%s (%s)' % (f.pool, f.state) for f in problems)
    return text + '.'


def _counts(findings):
    by_state = {}
    for finding in findings:
        by_state[finding.state] = by_state.get(finding.state, 0) + 1
    return ', '.join('%d %s' % (n, state)
                     for state, n in sorted(by_state.items()))


REMOVAL_HELP = """\
Never remove an image that glance uses. For each orphan, check first that
`glance image-show ID` answers "not found", or a status other than active
(an upload whose worker died leaves the glance image "saving"), then
remove the RBD image:"""


def removal_text(findings):
    orphans = [f for f in findings if f.orphan]
    if not orphans:
        return ''
    lines = [REMOVAL_HELP]
    for finding in orphans:
        lines.append('')
        lines.append('  glance image-show %s' % shell_word(finding.image))
        lines += ['  ' + c for c in rbd_commands(finding)]
    return '\n'.join(lines)
