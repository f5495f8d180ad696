"""Configuration options of the progress_rbd store.

The options live in the store's own group (``[glance_store]`` in
single-store deployments, the backend's group with ``enabled_backends``)
next to the stock RBD options, so one glance-api.conf section describes a
backend completely.
"""

from oslo_config import cfg

from glance_store import exceptions

PROGRESS_OPTS = [
    cfg.BoolOpt('progress_enabled',
                default=True,
                help="""
Publish upload progress to memcached.

When enabled, every upload into this backend publishes how many bytes
have been stored so far, the expected size and the upload state to the
memcached servers set in ``progress_memcached_servers``. Disabling it
makes the store behave exactly like the stock RBD store.

Possible values:
    * True
    * False

Related options:
    * progress_memcached_servers

"""),
    cfg.ListOpt('progress_memcached_servers',
                default=['127.0.0.1:11211'],
                help="""
Memcached servers that receive upload progress.

A comma separated list of ``host:port`` entries. Progress records are
spread over the servers by key, exactly as any python-memcached client
does, so readers must be given the same list in the same order.

Possible values:
    * A comma separated list of host:port pairs

Related options:
    * progress_enabled
    * progress_key_prefix

"""),
    cfg.IntOpt('progress_ttl',
               default=86400,
               min=1,
               help="""
Lifetime, in seconds, of the progress records in memcached.

Records expire this long after their last update, so finished uploads
do not fill memcached. A record whose final state could not be written
because memcached was unreachable is retried until this lifetime ends.

Possible values:
    * A positive integer

Related options:
    * progress_memcached_servers

"""),
    cfg.StrOpt('progress_key_prefix',
               default='',
               help="""
Prefix put in front of every progress key.

Use it to share one memcached between several clouds or regions. The
prefix must be printable ASCII without spaces; memcached keys are limited
to 250 bytes, and ids that would make a key longer are hashed.

Possible values:
    * An empty string (the default): keys are ``<image_id>_total_size``
    * Any printable ASCII string without whitespace

Related options:
    * progress_memcached_servers

"""),
    cfg.FloatOpt('progress_socket_timeout',
                 default=0.5,
                 min=0.01,
                 help="""
Timeout, in seconds, of every memcached operation.

Progress is published by a background thread, so an unreachable or hung
memcached never stalls an upload; this timeout bounds how long that
thread waits for a server, and how long the end of an upload waits for
its final record to be written before returning.

Possible values:
    * A positive number of seconds

Related options:
    * progress_memcached_servers

"""),
    cfg.FloatOpt('progress_min_interval',
                 default=0.0,
                 min=0.0,
                 help="""
Minimum time, in seconds, between two progress updates of one upload.

The default, 0, publishes after every chunk written (every
``rbd_store_chunk_size`` megabytes). A larger value lowers the load on
memcached for clouds with many concurrent uploads. The first and the
final updates are always published.

Possible values:
    * 0 or a positive number of seconds

Related options:
    * rbd_store_chunk_size

"""),
]

PIPELINE_OPTS = [
    cfg.IntOpt('progress_rbd_writes_in_flight',
               default=4,
               min=1,
               max=64,
               help="""
Number of chunk writes kept in flight to Ceph during an upload.

Writes go through librbd's asynchronous API so that Ceph stores one
chunk while the next ones are read and hashed. Each write in flight
holds one chunk (``rbd_store_chunk_size`` megabytes) in memory, so the
memory of an upload is bounded by this value times the chunk size.
1 writes one chunk at a time, like the stock RBD store.

Possible values:
    * An integer from 1 to 64

Related options:
    * rbd_store_chunk_size

"""),
]

OPTIONS = PROGRESS_OPTS + PIPELINE_OPTS


def list_opts():
    """Entry point for oslo-config-generator (``oslo.config.opts``)."""
    from glance_progress_store import store
    return [('glance_store', store.Store.OPTIONS)]


def check_prefix(prefix):
    if any(ch.isspace() or not ch.isprintable() or ord(ch) > 126
           for ch in prefix):
        return "must be printable ASCII without whitespace"
    if len(prefix.encode()) > 100:
        return "must be at most 100 bytes"
    return None


def check_servers(servers):
    for server in servers:
        host, sep, port = server.rpartition(':')
        if not sep or not host or not port.isdigit() or not (
                0 < int(port) < 65536):
            return "entry %r is not host:port" % server
    if not servers:
        return "must name at least one server"
    return None


class ProgressConfig(object):
    """The progress options of one store, read and validated once.

    Reading them at configure time turns a bad value into a
    BadStoreConfiguration at start-up (glance then disables writes to the
    store and logs why) instead of an error in the middle of an upload.
    """

    def __init__(self, store_conf, store_name):
        values = {}
        for opt in OPTIONS:
            try:
                values[opt.name] = getattr(store_conf, opt.name)
            except (cfg.ConfigFileValueError, ValueError) as e:
                raise exceptions.BadStoreConfiguration(
                    store_name=store_name,
                    reason="invalid value for %s: %s" % (opt.name, e))
        self.enabled = values['progress_enabled']
        self.servers = tuple(values['progress_memcached_servers'] or ())
        self.ttl = values['progress_ttl']
        self.key_prefix = values['progress_key_prefix'] or ''
        self.socket_timeout = values['progress_socket_timeout']
        self.min_interval = values['progress_min_interval']
        self.writes_in_flight = values['progress_rbd_writes_in_flight']
        for name, problem in (
                ('progress_memcached_servers',
                 self.enabled and check_servers(self.servers)),
                ('progress_key_prefix', check_prefix(self.key_prefix))):
            if problem:
                raise exceptions.BadStoreConfiguration(
                    store_name=store_name,
                    reason="invalid value for %s: %s" % (name, problem))
