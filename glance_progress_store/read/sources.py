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

"""Where glance-api writes the records, and which pools its stores use.

``glance-progress`` runs next to glance-api and reads glance's own
configuration through oslo.config, the way glance_store reads it
(single-store or multi-store, with ``[backend_defaults]``), so that an
operator does not repeat the memcached servers, key prefix or pools on
the command line; ``--servers``, ``--prefix`` and the Ceph options
override it.

It takes plain values, not the CLI's arguments, and reports what looks
wrong but is not fatal through a ``warn(text)`` callback (default: this
module's logger), so that the CLI decides where warnings go.
"""

import copy
import dataclasses
import logging
import os

from oslo_config import cfg

from glance_progress_store import _memcache
from glance_progress_store import options
from glance_progress_store import records

LOG = logging.getLogger(__name__)

DEFAULT_CONFIG_FILE = '/etc/glance/glance-api.conf'
DEFAULT_CONFIG_DIR = '/etc/glance/glance-api.conf.d'
SHARED_GROUP = 'backend_defaults'  # glance_store's shared backend options
_READ_OPTS = ('progress_memcached_servers', 'progress_key_prefix')
# The single-store options that say whether uploads reach progress_rbd;
# no default here, so that an unset one is not reported.
_STORE_OPTS = (cfg.ListOpt('stores'), cfg.StrOpt('default_store'))
_SCHEMES = ('rbd', records.SCHEME)  # the schemes progress_rbd registers


def _log_warning(text):
    LOG.warning('%s', text)


class ConfigError(Exception):
    """A configuration or usage problem: glance-progress exits 64, the
    progress endpoint answers 503."""


@dataclasses.dataclass(frozen=True)
class Source:
    """One place records are written to: a server list and a key prefix."""

    servers: tuple
    prefix: str = ''


@dataclasses.dataclass
class Settings:
    """Where each backend's records live, as glance-api would write them."""

    plain_sources: list  # the plain keys may be in any backend's source
    backends: dict  # progress_rbd backend name -> Source; empty: single

    def source_of(self, backend):
        """The source of a backend's keys; ConfigError if not configured."""
        if not self.backends:
            return self.plain_sources[0]
        if backend not in self.backends:
            raise ConfigError(
                'backend %r is not a progress_rbd backend in '
                'enabled_backends (known: %s)'
                % (backend, ', '.join(sorted(self.backends))))
        return self.backends[backend]

    def targets(self, backend=None):
        """(backend, source) pairs where an image's records are.

        With ``backend``, that backend's keys; without, the plain keys in
        every source they may be in, then every backend's keys.
        """
        if backend is not None:
            return [(backend, self.source_of(backend))]
        return ([(None, s) for s in self.plain_sources] +
                list(self.backends.items()))

    def sources(self):
        """Every source once: the plain keys' first, then the backends'."""
        return _unique(list(self.plain_sources) +
                       list(self.backends.values()))

    def servers(self):
        """Every memcached server of every source, once, sorted."""
        return tuple(sorted({server for source in self.sources()
                             for server in source.servers}))


def copy_opts(opts, names, default_none):
    opts = [copy.deepcopy(o) for o in opts if o.name in names]
    if default_none:  # as glance_store does: None means "not set here"
        for opt in opts:
            opt.default = None
    return opts


def _progress_opts(default_none=False):
    return copy_opts(options.PROGRESS_OPTS, _READ_OPTS, default_none)


def _checked_source(servers, prefix, where):
    try:
        servers = _memcache.parse_servers(servers)
    except _memcache.BadServer as e:
        raise ConfigError('%s progress_memcached_servers: %s' % (where, e))
    prefix = prefix or ''
    problem = records.check_prefix(prefix)
    if problem:
        raise ConfigError('%s progress_key_prefix %s' % (where, problem))
    return Source(servers, prefix)


def read_values(conf, group, names, fallback=None):
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
    values = read_values(conf, group, _READ_OPTS, fallback)
    return _checked_source(values['progress_memcached_servers'],
                           values['progress_key_prefix'], '[%s]' % group)


def default_config():
    """glance-api's own files, when they exist on this host."""
    files = [DEFAULT_CONFIG_FILE] if os.path.isfile(DEFAULT_CONFIG_FILE) \
        else []
    dirs = [DEFAULT_CONFIG_DIR] if os.path.isdir(DEFAULT_CONFIG_DIR) else []
    return files, dirs


def parse_config(config_files, config_dirs, opts, warn=None):
    """(parsed configuration, its progress_rbd backends, sorted).

    glance-api's files parsed here, for the commands that run outside
    glance; :func:`progress_backends` says what is registered.
    """
    conf = _parsed(config_files, config_dirs)
    return conf, progress_backends(conf, opts, warn)


def _parsed(config_files, config_dirs):
    """glance-api's files and drop-in directories, as glance parses them."""
    for path in config_dirs:  # oslo.config would skip it without a word
        if not os.path.isdir(path):
            raise ConfigError('cannot read the configuration: %s is not a '
                              'directory' % path)
    conf = cfg.ConfigOpts()
    try:
        conf([], project='glance', prog='glance-api',
             default_config_files=config_files,
             default_config_dirs=config_dirs)
    except (cfg.Error, ValueError, OSError) as e:
        raise ConfigError('cannot read the configuration: %s' % e)
    return conf


def _register(conf, opts, group=None):
    """Register the options not registered yet.

    Inside glance-api, glance_store has registered its drivers' options
    already (with, in a backend's group, no default, so that the store
    falls back to ``[backend_defaults]``): those are kept, so that they
    are read exactly as the store reads them.
    """
    for opt in opts:
        try:
            conf.register_opt(opt, group=group)
        except cfg.DuplicateOptError:
            pass  # registered by glance or glance_store: theirs is read


def progress_backends(conf, opts, warn=None):
    """The progress_rbd backends of a parsed configuration, sorted.

    ``conf`` is glance-api's own configuration (the paste filter) or
    glance-api's files parsed by :func:`parse_config` (the commands).
    ``opts(default_none)`` makes the options to read; those not
    registered yet are registered in ``[glance_store]``,
    ``[backend_defaults]`` and, with no default, in each backend's
    group, as glance_store registers them. With ``warn``, a configuration
    whose uploads do not reach progress_rbd is reported.
    """
    _register(conf, [cfg.DictOpt('enabled_backends')])
    _register(conf, opts(), 'glance_store')
    _register(conf, copy.deepcopy(_STORE_OPTS), 'glance_store')
    _register(conf, opts(), SHARED_GROUP)
    try:
        enabled = conf.enabled_backends or {}
    except (cfg.Error, ValueError) as e:
        raise ConfigError('cannot read the configuration: %s' % e)
    backends = [name for name, kind in sorted(enabled.items())
                if kind.strip() == records.SCHEME]
    for name in backends:
        _register(conf, opts(default_none=True), name)
    if warn is not None:
        for problem in _store_problems(conf, enabled, backends):
            warn(problem)
    return backends


def _store_problems(conf, enabled, backends):
    """Why glance-api would not upload into progress_rbd, if it would not."""
    if enabled:
        if not backends:
            yield ('enabled_backends has no %s backend; reading '
                   '[glance_store]' % records.SCHEME)
        return
    stores = conf.glance_store.stores
    if stores is not None and records.SCHEME not in stores:
        yield ('[glance_store] stores = %s does not list %s: glance-api '
               'does not load it; reading [glance_store] anyway'
               % (', '.join(stores), records.SCHEME))
    default = conf.glance_store.default_store
    if default is not None and default not in _SCHEMES:
        yield ('[glance_store] default_store = %s: uploads go to another '
               'store, which publishes no progress (%s uses %s); reading '
               '[glance_store] anyway'
               % (default, records.SCHEME, ' or '.join(_SCHEMES)))


def load_settings(config_files, config_dirs, backend=None,
                  warn=_log_warning):
    """The settings of glance-api's files, parsed here (the commands)."""
    return settings_of(_parsed(config_files, config_dirs), backend, warn)


def settings_of(conf, backend=None, warn=_log_warning):
    """Read the progress options of a parsed configuration as glance_store
    reads them: the one rule for the commands and the paste filter.

    Single-store: ``[glance_store]``. Multi-store: every ``progress_rbd``
    backend of ``enabled_backends`` from its own group, falling back to
    ``[backend_defaults]`` and then to the option's default.

    ``backend`` (``--backend``) may name a backend that is not configured
    (any more): it is warned about, and read as if it were, so that the
    keys of a backend just removed from the configuration can be read.
    """
    names = progress_backends(conf, _progress_opts, warn)
    if not names:
        if backend is not None:
            warn('--backend %s: single-store configuration (no '
                 'enabled_backends), whose uploads write no per-backend '
                 'keys; reading them at [glance_store]\'s servers'
                 % backend)
        return Settings([_read_group(conf, 'glance_store')], {})
    backends = {name: _read_group(conf, name, fallback=SHARED_GROUP)
                for name in names}
    plain = _unique(backends.values())
    if backend is not None and backend not in backends:
        warn('backend %r is not a %s backend in enabled_backends (known: '
             '%s); reading its keys as [%s] or [%s] say'
             % (backend, records.SCHEME, ', '.join(names), backend,
                SHARED_GROUP))
        _register(conf, _progress_opts(default_none=True), backend)
        backends[backend] = _read_group(conf, backend, fallback=SHARED_GROUP)
    return Settings(plain, backends)


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


def config_paths(config_files=None, config_dirs=None):
    """The files and directories given, or glance-api's own by default."""
    files, dirs = list(config_files or ()), list(config_dirs or ())
    if not files and not dirs:
        files, dirs = default_config()
    return files, dirs


def read_settings(config_files=None, config_dirs=None, servers=None,
                  prefix=None, backend=None, warn=_log_warning):
    """Where the records are: the configuration, then the overrides."""
    settings = load_settings(*config_paths(config_files, config_dirs),
                             backend=backend, warn=warn)
    return apply_overrides(settings, servers, prefix)
