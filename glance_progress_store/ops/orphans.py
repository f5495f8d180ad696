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

"""``glance-progress orphans``: partial uploads left behind in Ceph.

Every upload the ``progress_rbd`` store finishes ends with a protected
snapshot ``snap`` on its RBD image (the ``rbd://FSID/POOL/IMAGE/snap``
location points at it). An image without it is an upload that has not
finished: one still running, or one whose glance-api worker died (a
SIGKILLed or OOM-killed uWSGI worker never reaches the store's cleanup),
or one whose cleanup failed. This module finds such images in the pools
and classifies each with its progress record, read through
:class:`~glance_progress_store.read.lookup.Lookup` (never unpickling). The
report's text is :mod:`glance_progress_store.ops.orphans_report`'s.

It never deletes anything.

Ceph's Python bindings are imported here, on first use, so that ``show``
and ``watch`` work on hosts without them.
"""

import calendar
import dataclasses
import json
import time
import warnings

from glance_progress_store.read import lookup
from glance_progress_store.read import sources
from glance_progress_store.read import states

JSON_FIELDS = ('pool', 'image', 'state', 'bytes', 'total', 'age_s',
               'record_state', 'reason', 'error')


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


# The stock driver's options that say where a store's images are.
_RBD_READ_OPTS = ('rbd_store_pool', 'rbd_store_ceph_conf', 'rbd_store_user')


def _rbd_opts(default_none=False):
    # The stock driver's own options, for the same defaults. Imported here,
    # not at the top: the driver module imports Ceph's bindings.
    from glance_store._drivers import rbd as rbd_driver
    return sources.copy_opts(rbd_driver.Store.OPTIONS,
                             _RBD_READ_OPTS, default_none)


def load_pools(config_files, config_dirs):
    """[(backend or None, {rbd option: value})] of the progress_rbd stores.

    The options ``orphans`` needs (pool, ceph.conf, user), read like the
    progress options: ``[glance_store]``, or each backend's group falling
    back to ``[backend_defaults]``.
    """
    conf, names = sources.parse_config(config_files, config_dirs, _rbd_opts)
    if not names:
        return [(None, sources.read_values(conf, 'glance_store',
                                           _RBD_READ_OPTS))]
    return [(name, sources.read_values(conf, name, _RBD_READ_OPTS,
                                       sources.SHARED_GROUP))
            for name in names]


def _rados_id(user):
    # glance_store passes str(rbd_store_user): an unset user becomes the
    # user "None"; librados' own default is what the option means.
    return None if user in (None, '', 'None') else user


@dataclasses.dataclass(frozen=True)
class PoolTarget:
    """A pool to check for orphans, how to reach it and where its records are.

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


def orphan_targets(settings, config_files=None, config_dirs=None,
                   backend=None, pools=None, ceph_conf=None, rbd_user=None):
    """The pools to check, from the configuration and the overrides.

    ``backend`` keeps that backend's pool; ``pools`` replaces the list
    (a configured pool keeps its backend's settings, another one gets the
    first store's and the plain keys); ``ceph_conf`` and ``rbd_user``
    apply to every pool. Pools reached the same way are checked once.
    """
    configured = load_pools(*sources.config_paths(config_files, config_dirs))
    if backend is not None:
        if not settings.backends:
            raise sources.ConfigError('--backend needs a multi-store '
                                      'configuration '
                                      '(enabled_backends)')
        settings.source_of(backend)  # ConfigError if it is not one
        configured = [(n, v) for n, v in configured if n == backend]

    def target(name, values, pool=None):
        conf_path = (ceph_conf if ceph_conf is not None
                     else values['rbd_store_ceph_conf'] or '')
        user = _rados_id(rbd_user if rbd_user is not None
                         else values['rbd_store_user'])
        if name is None:
            records_at = tuple((s, None) for s in settings.plain_sources)
        else:
            records_at = ((settings.source_of(name), name),)
        return PoolTarget(pool or values['rbd_store_pool'], conf_path,
                          user, name, records_at)

    targets = [target(name, values) for name, values in configured]
    if pools:
        known = {}
        for item in targets:
            known.setdefault(item.pool, item)
        targets = [known.get(pool) or target(None, configured[0][1], pool)
                   for pool in pools]
    unique = {}
    for item in targets:
        unique.setdefault((item.pool,) + item.cluster, item)
    return list(unique.values())


@dataclasses.dataclass(frozen=True)
class Partial:
    """An RBD image without the protected snapshot of a finished upload."""

    target: 'PoolTarget'
    name: str
    created_at: object  # epoch seconds, None if Ceph does not say
    snapshots: tuple  # names of its snapshots (an unprotected 'snap'...)


@dataclasses.dataclass(frozen=True)
class PoolProblem:
    target: 'PoolTarget'
    state: str  # states.UNREACHABLE or states.NO_POOL
    message: str


class CephError(Exception):
    """Ceph could not be reached or refused; the message says how."""


class Ceph:
    """Connections to the clusters of the targets, opened on demand.

    Every librados operation is bounded by ``timeout`` seconds, so a dead
    monitor or a blocked OSD makes the check fail instead of hanging.
    """

    def __init__(self, timeout):
        self.rados, self.rbd = ceph_modules()
        # Imported now, not at the top: it imports Ceph's bindings, which
        # show and watch never need.
        from glance_store._drivers import rbd as rbd_driver
        self.snapshot = rbd_driver.DEFAULT_SNAPNAME  # upstream's, and ours
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
            return PoolProblem(target, states.UNREACHABLE, str(e))
        try:
            with client.open_ioctx(target.pool) as ioctx:
                names = self.rbd.RBD().list(ioctx)
                partial = [p for p in (self._inspect(ioctx, target, name)
                                       for name in names) if p is not None]
        except self.rados.ObjectNotFound as e:
            return PoolProblem(target, states.NO_POOL, 'pool %s: %s'
                               % (target.pool, e))
        except (self.rados.Error, self.rbd.Error) as e:
            return PoolProblem(target, states.UNREACHABLE, 'pool %s: %s'
                               % (target.pool, e))
        return len(names), partial

    def _inspect(self, ioctx, target, name):
        """A Partial, or None for a finished (or vanished) image."""
        try:
            with self.rbd.Image(ioctx, name, read_only=True) as image:
                snapshots = tuple(s['name'] for s in image.list_snaps())
                if (self.snapshot in snapshots and
                        image.is_protected_snap(self.snapshot)):
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
    """The image's creation as a Unix time, or None.

    Ceph 16 and 18 return a naive datetime in UTC, Ceph 20 an aware one:
    utctimetuple() reads both right. Ceph 18's binding makes it with
    datetime.utcfromtimestamp(), deprecated since Python 3.12: that
    warning (Ceph's, once per image) is not shown to whoever runs
    glance-progress orphans.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                'ignore', message=r'datetime\.datetime\.utcfromtimestamp',
                category=DeprecationWarning)
            stamp = image.create_timestamp()
    except Exception:  # older librbd, or an image format without it
        return None
    return float(calendar.timegm(stamp.utctimetuple()))


@dataclasses.dataclass(frozen=True)
class Finding:
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
        return self.state in states.ORPHAN_STATES

    def to_json(self):
        return json.dumps({name: getattr(self, name)
                           for name in JSON_FIELDS})


def classify(partial, record, now, stall_after, error_state=None,
             error=None):
    """What an unfinished image is, given its record (or why there is none).

    ``error_state`` is states.BAD or states.UNREACHABLE when the record
    could not be read, with ``error`` the message.
    """
    common = dict(pool=partial.target.pool, image=partial.name,
                  target=partial.target, snapshots=partial.snapshots)
    if error_state is not None:
        return Finding(state=error_state, error=error,
                       age_s=_age(now, partial.created_at), **common)
    if record is None:
        young = (partial.created_at is not None and
                 now - partial.created_at < stall_after)
        return Finding(state=states.NEW if young else states.NO_RECORD,
                       age_s=_age(now, partial.created_at), **common)
    age = _age(now, record.updated_at)
    if record.state in states.ACTIVE:
        stalled = now - record.updated_at > stall_after
        state = states.STALLED if stalled else states.IN_PROGRESS
    elif record.state == states.FAILED:
        state = states.FAILED
    else:  # stored, yet the snapshot is not there (anymore)
        state = states.INCONSISTENT
    return Finding(state=state, bytes=record.bytes, total=record.total,
                   age_s=age, record_state=record.state,
                   reason=record.reason, **common)


def _age(now, then):
    return None if then is None else round(max(0.0, now - then), 1)


def pool_finding(problem):
    return Finding(pool=problem.target.pool, image=None,
                   state=problem.state, error=problem.message,
                   target=problem.target)


def orphan_finding(records_lookup, partial, now, stall_after):
    """Classify an unfinished image with the first record found for it."""
    error = None
    for source, backend in partial.target.records_at:
        view = records_lookup.read(partial.name, backend, source, now)
        if view.error is None and view.state != states.UNKNOWN:
            return classify(partial, records_lookup.record(
                partial.name, backend, source), now, stall_after)
        if view.error is not None:
            error = error or view
    if error is not None:
        return classify(partial, None, now, stall_after,
                        error_state=error.state, error=error.error)
    return classify(partial, None, now, stall_after)


def find_orphans(targets, settings, stall_after, ceph_timeout):
    """([Finding], [(pool, number of images)]) for the targets."""
    findings, counted, partial = [], [], []
    with Ceph(ceph_timeout) as ceph:
        for target in targets:
            result = ceph.scan(target)
            if isinstance(result, PoolProblem):
                findings.append(pool_finding(result))
                continue
            counted.append((target.pool, result[0]))
            partial += result[1]
        if not partial:
            return findings, counted
        records_lookup = lookup.Lookup(settings, stall_after)
        # memcached is only needed when something is partial
        records_lookup.poll()
        now = time.time()
        for image in partial:
            finding = orphan_finding(records_lookup, image, now,
                                     stall_after)
            # "stored": it may have got its snapshot since it was listed
            if (finding.record_state != states.STORED or
                    ceph.still_partial(image)):
                findings.append(finding)
    return findings, counted


def exit_code(findings):
    """The highest: unreachable 4, no pool 64, an orphan 1, else 0."""
    codes = [states.EXIT_UNREACHABLE if f.state == states.UNREACHABLE else
             states.EXIT_USAGE if f.state == states.NO_POOL else
             states.EXIT_ORPHANS if f.orphan else states.EXIT_OK
             for f in findings]
    return max(codes or [states.EXIT_OK])
