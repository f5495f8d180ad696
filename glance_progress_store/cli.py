"""``glance-progress``: show or watch the upload progress of glance images.

Operators run it next to glance-api: it finds the memcached servers and
key prefix in glance's own configuration and reads the records that the
``progress_rbd`` store publishes. Values are read with
:class:`~glance_progress_store.reader.ProgressReader`, which never unpickles
or evaluates anything, so a memcached that others can write to cannot run
code in an operator's shell.

``orphans`` also reads the stores' pools from that configuration and lists
the RBD images of unfinished uploads (:mod:`glance_progress_store.orphans`);
it is the only sub-command that needs Ceph's Python bindings.

Exit codes: see ``EXIT_HELP`` and ``ORPHANS_EXIT_HELP`` (also in
``--help``).
"""

import argparse
import copy
import dataclasses
import json
import os
import sys
import time

from oslo_config import cfg

from glance_progress_store import options
from glance_progress_store import orphans
from glance_progress_store import reader as reader_mod
from glance_progress_store import records

EXIT_HELP = """\
exit codes (the highest applicable one wins):
  0   every record shown is uploading, finalizing or stored (watch: stored)
  1   an upload failed
  2   an upload stalled: no update for --stall-after seconds
  3   no record (unknown), or a value this package did not write (bad)
  4   memcached unreachable
  5   watch: --timeout reached before every upload ended
  64  usage or configuration error
"""

ORPHANS_EXIT_HELP = """\
exit codes (the highest applicable one wins):
  0   no orphan: every unfinished image is an upload in progress (or new)
  1   orphans found: stalled, failed, no record, bad or inconsistent
  4   Ceph or memcached unreachable
  64  usage or configuration error (a missing pool, no Ceph bindings)
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_STALLED = 2
EXIT_UNKNOWN = 3
EXIT_UNREACHABLE = 4
EXIT_TIMEOUT = 5
EXIT_USAGE = 64
EXIT_ORPHANS = 1  # orphans: the cron job's alert

STALLED = 'stalled'
UNKNOWN = 'unknown'
BAD = 'bad'
UNREACHABLE = 'unreachable'
WAITING = 'waiting'  # watch only: no record yet, within --wait-start

_EXIT_CODES = {records.FAILED: EXIT_FAILED, STALLED: EXIT_STALLED,
               UNKNOWN: EXIT_UNKNOWN, BAD: EXIT_UNKNOWN,
               UNREACHABLE: EXIT_UNREACHABLE}
_ACTIVE = (records.UPLOADING, records.FINALIZING)

DEFAULT_CONFIG_FILE = '/etc/glance/glance-api.conf'
DEFAULT_CONFIG_DIR = '/etc/glance/glance-api.conf.d'
SHARED_GROUP = 'backend_defaults'  # glance_store's shared backend options
_READ_OPTS = ('progress_memcached_servers', 'progress_key_prefix')
_RBD_READ_OPTS = ('rbd_store_pool', 'rbd_store_ceph_conf', 'rbd_store_user')


# --- Formatting: pure functions --------------------------------------------

_UNITS = ('B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB')


def human_size(nbytes):
    """``1.2 GiB``: binary units, as ``rbd du`` and glance's sizes."""
    if nbytes is None:
        return '?'
    if nbytes < 1024:
        return '%d B' % nbytes
    value = float(nbytes)
    for unit in _UNITS[1:]:
        value /= 1024
        if value < 1023.95 or unit == _UNITS[-1]:
            return '%.1f %s' % (value, unit)


def human_rate(bytes_per_s):
    return '?' if bytes_per_s is None else human_size(bytes_per_s) + '/s'


def human_duration(seconds):
    """``45s``, ``1m05s``, ``2h03m``, ``3d04h``: short enough for a bar."""
    if seconds is None:
        return '?'
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return '%ds' % s
    if s < 3600:
        return '%dm%02ds' % divmod(s, 60)
    if s < 86400:
        return '%dh%02dm' % (s // 3600, s % 3600 // 60)
    return '%dd%02dh' % (s // 86400, s % 86400 // 3600)


@dataclasses.dataclass(frozen=True)
class View(object):
    """What an operator sees of one record; the fields of ``show --json``."""

    image_id: str
    backend: object  # the backend whose keys were read; None: plain keys
    state: str
    bytes: object = None
    total: object = None
    percent: object = None
    rate_bytes_per_s: object = None
    eta_s: object = None
    age_s: object = None
    started_at: object = None
    updated_at: object = None
    reason: object = None
    error: object = None

    def to_json(self):
        return json.dumps(dataclasses.asdict(self))  # fields in order


def view_of(image_id, backend, record, now, stall_after):
    """The status of a record at `now`, stalled if it stopped moving.

    The rate is the average from the start to the last update, so a
    stalled upload keeps the rate it had; the ETA counts from `now`.
    """
    if record is None:
        return View(image_id, backend, UNKNOWN)
    age = max(0.0, now - record.updated_at)
    state = record.state
    if state in _ACTIVE and age > stall_after:
        state = STALLED
    elapsed = record.updated_at - record.started_at
    rate = record.bytes / elapsed if elapsed > 0 else None
    eta = None
    if state in _ACTIVE and record.total and rate:
        remaining = max(0, record.total - record.bytes)
        eta = round(max(0.0, remaining / rate - age), 1)
    percent = record.percent
    return View(image_id, backend, state, record.bytes, record.total,
                None if percent is None else round(percent, 1),
                None if rate is None else round(rate, 1), eta,
                round(age, 1), record.started_at, record.updated_at,
                record.reason)


def error_view(image_id, backend, state, message):
    return View(image_id, backend, state, error=message)


def label(view):
    return view.image_id + (' [%s]' % view.backend if view.backend else '')


def progress_text(view):
    """``1.2 GiB / 2.0 GiB (60.0%)``, or ``1.2 GiB`` while size unknown."""
    if view.total:
        return '%s / %s (%.1f%%)' % (human_size(view.bytes),
                                     human_size(view.total), view.percent)
    return human_size(view.bytes)


def describe(view):
    """The multi-line text of ``show`` for one record."""
    lines = [label(view)]

    def add(name, text):
        lines.append('  %-9s %s' % (name + ':', text))

    add('state', view.state)
    if view.error:
        add('error', view.error)
    elif view.state == UNKNOWN:
        add('note', 'no record: not started, expired, or written to '
            'other servers or prefix')
    if view.bytes is None:
        return '\n'.join(lines)
    if view.reason:
        add('reason', view.reason)
    size = '' if view.total else ' (size not known yet)'
    add('progress', progress_text(view) + size)
    add('rate', '%s average' % human_rate(view.rate_bytes_per_s))
    if view.eta_s is not None:
        add('eta', human_duration(view.eta_s))
    add('updated', '%s ago (started %s ago)' % (
        human_duration(view.age_s),
        human_duration(view.age_s + view.updated_at - view.started_at)))
    return '\n'.join(lines)


def plain_line(view):
    """One stable, space separated line per update, for scripts.

    ``IMAGE BACKEND STATE BYTES/TOTAL PCT RATE ETA [MESSAGE]``: BACKEND is
    ``-`` for the plain keys, TOTAL ``?`` while unknown, RATE in bytes/s,
    ETA in seconds, ``-`` where there is no value; MESSAGE is the failure
    reason or the error, and may contain spaces.
    """
    def num(value, fmt):
        return '-' if value is None else fmt % value

    if view.bytes is None:
        progress = '-'
    else:
        progress = '%d/%s' % (view.bytes, view.total or '?')
    fields = [view.image_id, view.backend or '-', view.state, progress,
              num(view.percent, '%.1f%%'),
              num(view.rate_bytes_per_s, '%.0fB/s'),
              num(view.eta_s, '%.0fs')]
    message = view.error or view.reason
    if message:
        fields.append(message)
    return ' '.join(fields)


def bar_info(view):
    """The text next to a progress bar."""
    if view.bytes is None:
        return view.state + (': ' + view.error if view.error else '')
    parts = [view.state, progress_text(view),
             human_rate(view.rate_bytes_per_s)]
    if view.eta_s is not None:
        parts.append('ETA ' + human_duration(view.eta_s))
    if view.state == STALLED:
        parts.append('no update for ' + human_duration(view.age_s))
    if view.reason:
        parts.append(view.reason)
    return '  '.join(parts)


def exit_code(views):
    return max([_EXIT_CODES.get(v.state, EXIT_OK) for v in views] or [0])


# --- Where the records are: glance's configuration -------------------------

class ConfigError(Exception):
    """A configuration or usage problem, reported with exit code 64."""


@dataclasses.dataclass(frozen=True)
class Source(object):
    """One place records are written to: a server list and a key prefix."""

    servers: tuple
    prefix: str = ''


@dataclasses.dataclass
class Settings(object):
    """Where each backend's records live, as glance-api would write them."""

    plain_sources: list  # the plain keys may be in any backend's source
    backends: dict  # progress_rbd backend name -> Source; empty: single

    def source_of(self, backend):
        if not self.backends:
            return self.plain_sources[0]
        if backend not in self.backends:
            raise ConfigError(
                'backend %r is not a progress_rbd backend in '
                'enabled_backends (known: %s)'
                % (backend, ', '.join(sorted(self.backends))))
        return self.backends[backend]


def _copies(opts, names, default_none):
    opts = [copy.deepcopy(o) for o in opts if o.name in names]
    if default_none:  # as glance_store does: None means "not set here"
        for opt in opts:
            opt.default = None
    return opts


def _progress_opts(default_none=False):
    return _copies(options.PROGRESS_OPTS, _READ_OPTS, default_none)


def _rbd_opts(default_none=False):
    # The stock driver's own options, for the same defaults. Imported here,
    # not at the top: the driver module imports Ceph's bindings.
    from glance_store._drivers import rbd as rbd_driver
    return _copies(rbd_driver.Store.OPTIONS, _RBD_READ_OPTS, default_none)


def _checked_source(servers, prefix, where):
    servers = tuple(s.strip() for s in servers or () if s.strip())
    prefix = prefix or ''
    for name, problem in (
            ('progress_memcached_servers', options.check_servers(servers)),
            ('progress_key_prefix', options.check_prefix(prefix))):
        if problem:
            raise ConfigError('%s %s %s' % (where, name, problem))
    return Source(servers, prefix)


def _read_values(conf, group, names, fallback=None):
    values = {}
    for name in names:
        try:
            value = conf[group][name]
            if value is None and fallback is not None:
                value = conf[fallback][name]
        except (cfg.Error, ValueError) as e:
            raise ConfigError('[%s] %s: %s' % (group, name, e))
        values[name] = value
    return values


def _read_group(conf, group, fallback=None):
    values = _read_values(conf, group, _READ_OPTS, fallback)
    return _checked_source(values['progress_memcached_servers'],
                           values['progress_key_prefix'], '[%s]' % group)


def default_config():
    """glance-api's own files, when they exist on this host."""
    files = [DEFAULT_CONFIG_FILE] if os.path.isfile(DEFAULT_CONFIG_FILE) \
        else []
    dirs = [DEFAULT_CONFIG_DIR] if os.path.isdir(DEFAULT_CONFIG_DIR) else []
    return files, dirs


def _parse_config(config_files, config_dirs, opts, warn=True):
    """(parsed configuration, its progress_rbd backends, sorted).

    ``opts(default_none)`` makes the options to read; they are registered
    in ``[glance_store]``, ``[backend_defaults]`` and, with no default, in
    each backend's group, as glance_store registers them.
    """
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.DictOpt('enabled_backends'))
    conf.register_opts(opts(), group='glance_store')
    conf.register_opts(opts(), group=SHARED_GROUP)
    try:
        conf([], project='glance', prog='glance-api',
             default_config_files=config_files,
             default_config_dirs=config_dirs)
        enabled = conf.enabled_backends or {}
    except (cfg.Error, ValueError) as e:
        raise ConfigError('cannot read the configuration: %s' % e)
    backends = [name for name, kind in sorted(enabled.items())
                if kind.strip() == 'progress_rbd']
    for name in backends:
        conf.register_opts(opts(default_none=True), group=name)
    if enabled and not backends and warn:
        _warn('enabled_backends has no progress_rbd backend; reading '
              '[glance_store]')
    return conf, backends


def load_settings(config_files, config_dirs):
    """Read the progress options the way glance_store reads them.

    Single-store: ``[glance_store]``. Multi-store: every ``progress_rbd``
    backend of ``enabled_backends`` from its own group, falling back to
    ``[backend_defaults]`` and then to the option's default.
    """
    conf, names = _parse_config(config_files, config_dirs, _progress_opts)
    if not names:
        return Settings([_read_group(conf, 'glance_store')], {})
    backends = {name: _read_group(conf, name, fallback=SHARED_GROUP)
                for name in names}
    return Settings(_unique(backends.values()), backends)


def load_pools(config_files, config_dirs):
    """[(backend or None, {rbd option: value})] of the progress_rbd stores.

    The options ``orphans`` needs (pool, ceph.conf, user), read like the
    progress options: ``[glance_store]``, or each backend's group falling
    back to ``[backend_defaults]``.
    """
    conf, names = _parse_config(config_files, config_dirs, _rbd_opts,
                                warn=False)
    if not names:
        return [(None, _read_values(conf, 'glance_store', _RBD_READ_OPTS))]
    return [(name, _read_values(conf, name, _RBD_READ_OPTS, SHARED_GROUP))
            for name in names]


def _unique(sources):
    return list(dict.fromkeys(sources))


def apply_overrides(settings, servers=None, prefix=None):
    """--servers and --prefix replace what the configuration says."""
    def replace(source):
        return _checked_source(
            servers.split(',') if servers is not None else source.servers,
            prefix if prefix is not None else source.prefix, 'command line')

    backends = {n: replace(s) for n, s in settings.backends.items()}
    plain = _unique(replace(s) for s in settings.plain_sources)
    return Settings(plain, backends)


def _config_paths(args):
    files, dirs = args.config_file or [], args.config_dir or []
    if not files and not dirs:
        files, dirs = default_config()
    return files, dirs


def settings_from_args(args):
    settings = load_settings(*_config_paths(args))
    return apply_overrides(settings, args.servers, args.prefix)


def _rados_id(user):
    # glance_store passes str(rbd_store_user): an unset user becomes the
    # user "None"; librados' own default is what the option means.
    return None if user in (None, '', 'None') else user


def orphan_targets(args, settings):
    """The pools to check, from the configuration and the overrides.

    ``--backend`` keeps that backend's pool; ``--pool`` replaces the list
    (a configured pool keeps its backend's settings, another one gets the
    first store's and the plain keys); ``--ceph-conf`` and ``--rbd-user``
    apply to every pool. Pools reached the same way are checked once.
    """
    configured = load_pools(*_config_paths(args))
    if args.backend is not None:
        if not settings.backends:
            raise ConfigError('--backend needs a multi-store configuration '
                              '(enabled_backends)')
        configured = [(n, v) for n, v in configured if n == args.backend]

    def target(backend, values, pool=None):
        ceph_conf = (args.ceph_conf if args.ceph_conf is not None
                     else values['rbd_store_ceph_conf'] or '')
        user = _rados_id(args.rbd_user if args.rbd_user is not None
                         else values['rbd_store_user'])
        if backend is None:
            records_at = tuple((s, None) for s in settings.plain_sources)
        else:
            records_at = ((settings.source_of(backend), backend),)
        return orphans.Target(pool or values['rbd_store_pool'], ceph_conf,
                              user, backend, records_at)

    targets = [target(name, values) for name, values in configured]
    if args.pool:
        known = {}
        for item in targets:
            known.setdefault(item.pool, item)
        targets = [known.get(pool) or target(None, configured[0][1], pool)
                   for pool in args.pool]
    unique = {}
    for item in targets:
        unique.setdefault((item.pool,) + item.cluster, item)
    return list(unique.values())


# --- Reading ---------------------------------------------------------------

class Lookup(object):
    """Reads views of records; one reader per source, checked every poll."""

    def __init__(self, settings, stall_after):
        self.settings = settings
        self.stall_after = stall_after
        self._readers = {}
        self.down = {}  # source -> why it is unreachable, this poll

    def poll(self):
        """Check every source once; unanswered ones are reported, not read."""
        self.down = {}
        for source in self._all_sources():
            reader = self._readers.get(source)
            if reader is None:
                reader = self._readers[source] = reader_mod.ProgressReader(
                    source.servers, source.prefix)
            try:
                reader.check_servers()
            except reader_mod.MemcachedUnavailable as e:
                self.down[source] = str(e)
                # python-memcached would skip a dead server for 30 s
                del self._readers[source]

    def _all_sources(self):
        return _unique(list(self.settings.plain_sources) +
                       list(self.settings.backends.values()))

    def targets(self, backend):
        """(backend, source) pairs to read: all of them without --backend."""
        if backend is not None:
            return [(backend, self.settings.source_of(backend))]
        pairs = [(None, s) for s in self.settings.plain_sources]
        pairs += [(b, s) for b, s in self.settings.backends.items()
                  if s not in self.down]  # the plain pair reports it
        return pairs

    def read(self, image_id, backend, source):
        """(record or None, error view or None)."""
        if source in self.down:
            return None, error_view(
                image_id, backend, UNREACHABLE, '%s (check '
                'progress_memcached_servers or --servers)'
                % self.down[source])
        try:
            return self._readers[source].get(image_id, backend), None
        except records.BadRecord as e:
            return None, error_view(image_id, backend, BAD, str(e))


def show_views(lookup, image_id, backend, now):
    """The plain record and each backend's record that exists.

    Without --backend, a missing record only shows (as unknown) when
    nothing at all is known of the image.
    """
    views = []
    for name, source in lookup.targets(backend):
        record, error = lookup.read(image_id, name, source)
        if error is not None or record is not None or backend is not None:
            views.append(error or view_of(image_id, name, record, now,
                                          lookup.stall_after))
    return views or [view_of(image_id, None, None, now, lookup.stall_after)]


# --- Sub-commands ----------------------------------------------------------

def cmd_show(args, settings):
    lookup = Lookup(settings, args.stall_after)
    lookup.poll()
    views = []
    now = time.time()
    for image_id in args.image_ids:
        views += show_views(lookup, image_id, args.backend, now)
    if args.json:
        print('\n'.join(v.to_json() for v in views))
    else:
        print('\n\n'.join(describe(v) for v in views))
    return exit_code(views)


class Watch(object):
    """Polls the records until every upload ended, one bar or line each."""

    def __init__(self, args, settings, out):
        self.args = args
        self.lookup = Lookup(settings, args.stall_after)
        self.out = out
        self.started = time.monotonic()
        self.last_records = {}  # a record that vanished keeps its last state
        self.reachable = set()
        self.down_since = {}

    def rows(self):
        """This poll's (view, final) pairs, one per upload."""
        self.lookup.poll()
        now, mono = time.time(), time.monotonic()
        rows = []
        for image_id in self.args.image_ids:
            read = [self._read(image_id, name, source, now, mono)
                    for name, source in self.lookup.targets(self.args.backend)]
            found = [r for r in read if r[0].state != UNKNOWN]
            named = [r for r in found if r[0].backend is not None]
            if named:  # the plain keys repeat one of these records
                found = named + [r for r in found if r[0].error and
                                 r[0].backend is None]
            if not found:
                waiting = mono - self.started < self.args.wait_start
                found = [(dataclasses.replace(
                    read[0][0], state=WAITING if waiting else UNKNOWN),
                    not waiting)]
            rows += found
        return rows

    def _read(self, image_id, backend, source, now, mono):
        record, error = self.lookup.read(image_id, backend, source)
        if error is not None and error.state == UNREACHABLE:
            # wrong servers: give up at once; a restart: give it time
            down_for = mono - self.down_since.setdefault(source, mono)
            return error, (source not in self.reachable or
                           down_for >= self.args.stall_after)
        if error is not None:
            return error, True
        self.reachable.add(source)
        self.down_since.pop(source, None)
        key = (image_id, backend, source)
        if record is None:  # expired, or memcached restarted: keep the last
            record = self.last_records.get(key)
        else:
            self.last_records[key] = record
        view = view_of(image_id, backend, record, now, self.args.stall_after)
        return view, view.state not in _ACTIVE

    def run(self):
        timeout = self.args.timeout
        deadline = None if timeout is None else self.started + timeout
        display = (_Bars(self.out) if self.out.isatty()
                   else _Lines(self.out))
        try:
            while True:
                rows = self.rows()
                views = [view for view, _ in rows]
                display.update(views)
                if all(final for _, final in rows):
                    return exit_code(views)
                pause = self.args.interval
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        display.message('timed out after %s'
                                        % human_duration(timeout))
                        return max(EXIT_TIMEOUT, exit_code(views))
                    pause = min(pause, left)
                time.sleep(pause)
        finally:
            display.close()


class _Lines(object):
    """Not a terminal: a plain line whenever a record changes."""

    def __init__(self, out):
        self.out = out
        self.shown = {}

    def update(self, views):
        for view in views:
            key = (view.image_id, view.backend)
            seen = (view.state, view.bytes, view.total, view.updated_at,
                    view.error)
            if self.shown.get(key) != seen:
                self.shown[key] = seen
                self.out.write(plain_line(view) + '\n')
        self.out.flush()

    def message(self, text):
        self.out.write('# %s\n' % text)

    def close(self):
        self.out.flush()


class _Bars(object):
    """A terminal: one tqdm progress bar per upload."""

    def __init__(self, out):
        import tqdm
        self._tqdm = tqdm.tqdm
        self.out = out
        self.bars = {}

    def _bar(self, key, keys):
        bar = self.bars.get(key)
        if bar is None:
            # an image's "waiting" bar becomes its first backend's bar
            old = [k for k in self.bars if k[0] == key[0] and k not in keys]
            if old:
                bar = self.bars[key] = self.bars.pop(old[0])
            else:
                bar = self.bars[key] = self._tqdm(
                    file=self.out, position=len(self.bars), leave=True,
                    dynamic_ncols=True, bar_format='{desc}')
        return bar

    def update(self, views):
        keys = [(v.image_id, v.backend) for v in views]
        width = max(len(label(v)) for v in views)
        for key, view in zip(keys, views):
            bar = self._bar(key, keys)
            info = bar_info(view).replace('{', '{{').replace('}', '}}')
            bar.total = view.total or None
            if view.bytes is not None:
                bar.n = view.bytes
            bar.desc = label(view).ljust(width)
            bar.bar_format = ('{desc} |{bar:30}| ' if bar.total
                              else '{desc} ') + info
            bar.refresh()

    def message(self, text):
        self._tqdm.write(text, file=self.out)

    def close(self):
        for bar in self.bars.values():
            bar.close()


def cmd_watch(args, settings):
    return Watch(args, settings, sys.stdout).run()


def orphan_finding(lookup, partial, now, stall_after):
    """Classify an unfinished image with the first record found for it."""
    error = None
    for source, backend in partial.target.records_at:
        record, problem = lookup.read(partial.name, backend, source)
        if record is not None:
            return orphans.classify(partial, record, now, stall_after)
        error = error or problem
    if error is not None:
        return orphans.classify(partial, None, now, stall_after,
                                error_state=error.state, error=error.error)
    return orphans.classify(partial, None, now, stall_after)


def find_orphans(targets, settings, stall_after, ceph_timeout):
    """([Finding], [(pool, number of images)]) for the targets."""
    findings, counted, partial = [], [], []
    with orphans.Ceph(ceph_timeout) as ceph:
        for target in targets:
            result = ceph.scan(target)
            if isinstance(result, orphans.PoolProblem):
                findings.append(orphans.pool_finding(result))
                continue
            counted.append((target.pool, result[0]))
            partial += result[1]
        if not partial:
            return findings, counted
        lookup = Lookup(settings, stall_after)
        lookup.poll()  # memcached is only needed when something is partial
        now = time.time()
        for image in partial:
            finding = orphan_finding(lookup, image, now, stall_after)
            # "stored": it may have got its snapshot since it was listed
            if (finding.record_state != records.STORED or
                    ceph.still_partial(image)):
                findings.append(finding)
    return findings, counted


def orphans_exit_code(findings):
    codes = [EXIT_UNREACHABLE if f.state == orphans.UNREACHABLE else
             EXIT_USAGE if f.state == orphans.NO_POOL else
             EXIT_ORPHANS if f.orphan else EXIT_OK for f in findings]
    return max(codes or [EXIT_OK])


def orphans_table(findings):
    """The findings as aligned columns under a header."""
    def progress(f):
        if f.bytes is None:
            return '-'
        return '%s / %s' % (human_size(f.bytes), human_size(f.total))

    rows = [('POOL', 'IMAGE', 'STATE', 'BYTES/TOTAL', 'AGE', 'ACTION')]
    rows += [(f.pool, '-' if f.image is None else orphans.printable(f.image),
              f.state, progress(f),
              '-' if f.age_s is None else human_duration(f.age_s),
              orphans.action(f)) for f in findings]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return '\n'.join('  '.join(cell.ljust(width)
                               for cell, width in zip(row, widths)) +
                     '  ' + row[5] for row in rows)


def cmd_orphans(args, settings):
    targets = orphan_targets(args, settings)
    findings, counted = find_orphans(targets, settings, args.stall_after,
                                     args.ceph_timeout)
    findings.sort(key=lambda f: (f.pool, f.image is not None, f.image))
    if args.json:
        if findings:
            print('\n'.join(f.to_json() for f in findings))
    else:
        if findings:
            print(orphans_table(findings) + '\n')
        print(orphans.summary(findings, counted))
        removal = orphans.removal_text(findings)
        if removal:
            print('\n' + removal)
    return orphans_exit_code(findings)


# --- Command line ----------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors, which is our 'stalled'."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, '%s: error: %s\n' % (self.prog, message))


def _seconds(text):
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError('must not be negative')
    return value


def _interval(text):
    value = _seconds(text)
    if value < 0.01:
        raise argparse.ArgumentTypeError('must be at least 0.01')
    return value


def _version():
    from importlib import metadata
    try:
        return metadata.version('glance_progress_store')
    except metadata.PackageNotFoundError:
        return 'unknown'


def _common_options(backend_help, stall_help):
    """The options every sub-command has: where the records are."""
    common = _Parser(add_help=False)
    where = common.add_argument_group('where to read')
    where.add_argument(
        '--config-file', action='append', metavar='PATH',
        help='glance-api configuration file; repeatable. Default: %s and '
             '%s/ when they exist' % (DEFAULT_CONFIG_FILE, DEFAULT_CONFIG_DIR))
    where.add_argument(
        '--config-dir', action='append', metavar='DIR',
        help='directory of *.conf files read after the config files')
    where.add_argument(
        '--servers', metavar='HOST:PORT,...',
        help='memcached servers, in the order glance-api lists them; '
             'overrides progress_memcached_servers')
    where.add_argument(
        '--prefix', metavar='PREFIX',
        help='key prefix; overrides progress_key_prefix')
    where.add_argument('--backend', metavar='NAME', help=backend_help)
    common.add_argument('--stall-after', type=_seconds, default=60.0,
                        metavar='S', help=stall_help)
    return common


ORPHANS_DESCRIPTION = """\
List the RBD images of unfinished uploads in the progress_rbd pools.

Every upload the store finishes has a protected snapshot "snap"; an image
without it is an upload in progress, or a partial upload that nothing will
finish: its glance-api worker was killed (SIGKILL, OOM) or its cleanup
failed. Each one is classified with its progress record:

not orphans:
  in progress   record uploading/finalizing, updated within --stall-after
  new           no record yet, and created less than --stall-after ago
orphans:
  stalled       record uploading/finalizing, older: the worker died
  failed        record failed, yet the image is there: its cleanup failed
  no record     record expired, or progress disabled; AGE is the image's
                own (Ceph's create timestamp)
  bad           a record this package did not write
  inconsistent  record stored, but the image has no protected snapshot
and unreachable: memcached (or Ceph, for a whole pool) did not answer.

The pools (rbd_store_pool), ceph.conf (rbd_store_ceph_conf), user
(rbd_store_user) and memcached servers are read from glance-api's
configuration: [glance_store], or every progress_rbd backend of
enabled_backends (falling back to [backend_defaults]). It never removes
anything: it prints the commands to run once `glance image-show ID` shows
that glance does not use the image. Needs Ceph's Python bindings.
"""


def build_parser():
    common = _common_options(
        backend_help='read the upload into this multi-store backend only. '
                     'Default: the image\'s latest upload and every '
                     'backend\'s upload',
        stall_help='call an upload stalled when it has not been updated '
                   'for S seconds (a dead glance-api worker, a Ceph cluster '
                   'that blocks writes); assumes the clocks agree '
                   '(default: 60)')
    orphans_common = _common_options(
        backend_help='check this multi-store backend\'s pool only',
        stall_help='an unfinished image whose record has not been updated '
                   'for S seconds is stalled; one without a record is new '
                   'until it is S seconds old. Keep it above '
                   'progress_min_interval; assumes the clocks agree '
                   '(default: 60)')

    parser = _Parser(
        prog='glance-progress', epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description='Show the progress of glance image uploads into\n'
                    'progress_rbd stores, as published to memcached.\n'
                    'orphans: partial uploads left in Ceph (exit codes: '
                    'orphans --help).')
    parser.add_argument('--version', action='version',
                        version='%(prog)s ' + _version())
    subs = parser.add_subparsers(dest='command', metavar='COMMAND')
    subs.required = True

    show = subs.add_parser(
        'show', parents=[common], epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help='print the state of uploads once',
        description='Print the state, size, progress, average rate, ETA\n'
                    'and age of the upload of each image.')
    show.add_argument('image_ids', nargs='+', metavar='IMAGE_ID')
    show.add_argument(
        '--json', action='store_true',
        help='one JSON object per record and line, with the fields '
             'image_id, backend, state, bytes, total, percent, '
             'rate_bytes_per_s, eta_s, age_s, started_at, updated_at, '
             'reason, error')
    show.set_defaults(func=cmd_show)

    watch = subs.add_parser(
        'watch', parents=[common], epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help='follow uploads until they end',
        description='Follow the uploads of the images until each one is '
                    'stored or failed.\n\n'
                    'On a terminal: one progress bar per upload. Otherwise '
                    'one line per\nupdate of an upload:\n\n'
                    '  IMAGE BACKEND STATE BYTES/TOTAL PCT RATE ETA '
                    '[MESSAGE]\n\n'
                    'BACKEND is "-" for the plain keys, TOTAL "?" while '
                    'unknown, RATE in\nB/s, ETA in seconds, "-" where '
                    'there is no value; MESSAGE is the\nfailure reason or '
                    'the error. Lines starting with "#" are notes.')
    watch.add_argument('image_ids', nargs='+', metavar='IMAGE_ID')
    watch.add_argument('--interval', type=_interval, default=1.0,
                       metavar='S', help='seconds between polls (default: 1)')
    watch.add_argument('--timeout', type=_seconds, metavar='S',
                       help='stop after S seconds (exit 5); default: never')
    watch.add_argument(
        '--wait-start', type=_seconds, default=30.0, metavar='S',
        help='how long an image may have no record before it is unknown: '
             'watching may start before the upload (default: 30)')
    watch.set_defaults(func=cmd_watch)

    orphan = subs.add_parser(
        'orphans', parents=[orphans_common], epilog=ORPHANS_EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help='list partial uploads left in Ceph (for cron)',
        description=ORPHANS_DESCRIPTION)
    ceph = orphan.add_argument_group('where to look in Ceph')
    ceph.add_argument(
        '--pool', action='append', metavar='NAME',
        help='check this pool instead of the configured ones; repeatable')
    ceph.add_argument(
        '--ceph-conf', metavar='PATH',
        help='ceph.conf to use; overrides rbd_store_ceph_conf')
    ceph.add_argument(
        '--rbd-user', metavar='USER',
        help='Ceph user (without "client."); overrides rbd_store_user. '
             'Default, as glance: librados\' default')
    ceph.add_argument(
        '--ceph-timeout', type=_interval, default=30.0, metavar='S',
        help='give up on a Ceph operation after S seconds (default: 30)')
    orphan.add_argument(
        '--json', action='store_true',
        help='one JSON object per unfinished image (and per pool that '
             'could not be checked) and line, with the fields %s'
             % ', '.join(orphans.JSON_FIELDS))
    orphan.set_defaults(func=cmd_orphans)
    return parser


def _warn(text):
    sys.stderr.write('glance-progress: warning: %s\n' % text)


def main(argv=None):
    """Entry point of ``glance-progress``; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
        if args.backend is not None:
            settings.source_of(args.backend)
        return args.func(args, settings)
    except (ConfigError, orphans.BindingsMissing) as e:
        sys.stderr.write('glance-progress: error: %s\n' % e)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
