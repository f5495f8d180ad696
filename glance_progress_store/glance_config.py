"""Where glance-api writes the records, and which pools its stores use.

``glance-progress`` runs next to glance-api and reads glance's own
configuration through oslo.config, the way glance_store reads it
(single-store or multi-store, with ``[backend_defaults]``), so that an
operator does not repeat the memcached servers, key prefix or pools on
the command line; ``--servers``, ``--prefix`` and the Ceph options
override it.
"""

import copy
import dataclasses
import os
import sys

from oslo_config import cfg

from glance_progress_store import memcached
from glance_progress_store import options
from glance_progress_store import orphans
from glance_progress_store import records

DEFAULT_CONFIG_FILE = '/etc/glance/glance-api.conf'
DEFAULT_CONFIG_DIR = '/etc/glance/glance-api.conf.d'
SHARED_GROUP = 'backend_defaults'  # glance_store's shared backend options
_READ_OPTS = ('progress_memcached_servers', 'progress_key_prefix')
_RBD_READ_OPTS = ('rbd_store_pool', 'rbd_store_ceph_conf', 'rbd_store_user')


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

    def sources(self):
        """Every source once: the plain keys' first, then the backends'."""
        return _unique(list(self.plain_sources) +
                       list(self.backends.values()))


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
    try:
        servers = memcached.parse_servers(servers)
    except memcached.BadServer as e:
        raise ConfigError('%s progress_memcached_servers: %s' % (where, e))
    prefix = prefix or ''
    problem = records.check_prefix(prefix)
    if problem:
        raise ConfigError('%s progress_key_prefix %s' % (where, problem))
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


def _warn(text):
    sys.stderr.write('glance-progress: warning: %s\n' % text)
