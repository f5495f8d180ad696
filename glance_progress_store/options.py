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

"""Configuration options of the progress_rbd store.

The options live in the store's own group (``[glance_store]`` in
single-store deployments, the backend's group with ``enabled_backends``)
next to the stock RBD options, so one glance-api.conf section describes a
backend completely.
"""

from oslo_config import cfg

from glance_progress_store import _memcache

PROGRESS_OPTS = [
    cfg.BoolOpt('progress_enabled',
                default=True,
                help="""
Publish upload progress to memcached.

When enabled, every upload into this backend publishes how many bytes
have been stored so far, the expected size and the upload state to the
memcached servers set in ``progress_memcached_servers``. Disabling it
makes the store publish nothing to memcached (notifications have their
own switch, ``progress_notifications``); it still stores like this
driver (the pipelined writes of ``progress_rbd_writes_in_flight``),
with the stock RBD store's locations and checksums.

Possible values:
    * True
    * False

Related options:
    * progress_memcached_servers
    * progress_discovery: without progress there is nothing to discover
    * rados_connect_timeout: a stock RBD option, but set it (10 to 30
      seconds). With its default, -1, an upload to a Ceph cluster that
      stops answering waits forever: its record stays ``uploading``
      with a frozen ``updated_at`` (readers show it ``stalled``) and the
      glance-api worker is stuck. With T set, the store gives up after
      about 5.3 x T, records ``failed`` / ``storage_timeout`` and removes
      the partial image if Ceph is back within 30 s; keep proxy and
      load-balancer timeouts above about 6 x T + 30 s

"""),
    cfg.ListOpt('progress_memcached_servers',
                default=['127.0.0.1:11211'],
                help="""
Memcached servers that receive upload progress.

A comma separated list of servers. Progress records are spread over
the servers by key, exactly as python-memcached spreads them, so readers
must be given the same list in the same order. A server that is down
holds back only its own records, which are written once it answers
again.

Possible values:
    * A comma separated list of ``HOST:PORT`` (IPv4 address or host
      name), ``inet:HOST:PORT``, ``inet6:[ADDRESS]:PORT`` or
      ``unix:/PATH`` entries; PORT defaults to 11211. These are exactly
      what python-memcached connects to: anything else (``[::1]:11211``,
      servers separated by spaces) disables the store at start-up with
      an error naming this option

Related options:
    * progress_enabled
    * progress_key_prefix: readers need the same prefix too
    * ``[upload_progress]`` memcached_socket_timeout: the progress
      endpoint reads these servers

"""),
    cfg.IntOpt('progress_ttl',
               default=86400,
               min=1,
               max=_memcache.MAX_TTL,
               help="""
Lifetime, in seconds, of the progress records in memcached.

Records expire this long after their last update, so finished uploads
do not fill memcached. A record whose final state could not be written
because memcached was unreachable is retried until this lifetime ends,
or for an hour at most. memcached reads a lifetime of more than 30 days
as an absolute time, so longer ones are refused.

Possible values:
    * An integer from 1 to 2592000 (30 days)

Related options:
    * progress_index_retention: keep it at most this, since an expired
      record cannot be listed
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
    * Any printable ASCII string without whitespace; anything else
      disables the store at start-up with an error naming this option

Related options:
    * progress_memcached_servers: readers must be given the same servers
      and the same prefix (``glance-progress --prefix``, or the same
      glance-api.conf)

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
    * ``[upload_progress]`` memcached_socket_timeout: the same bound for
      the progress endpoint's reads

"""),
    cfg.FloatOpt('progress_min_interval',
                 default=0.0,
                 min=0.0,
                 help="""
Minimum time, in seconds, between two progress updates of one upload.

The default, 0, publishes after every chunk Ceph acknowledges (every
``rbd_store_chunk_size`` megabytes), as soon as Ceph acknowledges it,
even while the upload waits for the client's next chunk. A larger value
lowers the load on memcached for clouds with many concurrent uploads;
bytes it holds back are published once the interval has passed, so a
record is never more than this far behind Ceph. The first and the final
updates are always published.

Possible values:
    * 0 or a positive number of seconds

Related options:
    * rbd_store_chunk_size
    * ``[upload_progress]`` stall_after, and ``--stall-after`` of
      ``glance-progress`` and its exporter (60 s by default): keep this
      well below them, or uploads in progress are shown ``stalled``

"""),
]

DISCOVERY_OPTS = [
    cfg.BoolOpt('progress_discovery',
                default=True,
                help="""
List this backend's uploads in memcached for discovery.

Each glance-api process keeps a small index of its uploads in memcached
(one key per process and server, written when an upload starts and ends
and refreshed while the process lives) and lists it in the server's
registry, so that ``glance-progress list``, the exporter and its page
find every upload in flight without knowing its image id and without
scanning memcached. Two extra writes per upload, none per chunk.
Without it, readers still find an upload by its image id
(``glance-progress show``, the progress endpoint), but
``glance-progress list`` and the exporter do not list it.

Possible values:
    * True
    * False

Related options:
    * progress_index_ttl
    * progress_index_retention

"""),
    cfg.IntOpt('progress_index_ttl',
               default=120,
               min=10,
               max=86400,
               help="""
Lifetime, in seconds, of a glance-api process's upload index.

The index is re-written every third of this while the process lives.
When a process is killed, its uploads stop being updated (readers show
them ``stalled`` after their stall setting, 60 s by default) and
disappear from discovery once its index expires. Keep it above the
readers' stall setting, so that a dead worker's uploads are seen stalled
before they go.

Possible values:
    * An integer from 10 to 86400

Related options:
    * progress_discovery
    * ``--stall-after`` of ``glance-progress list`` and of the exporter
      (60 s by default): keep this above it

"""),
    cfg.IntOpt('progress_index_retention',
               default=3600,
               min=0,
               max=_memcache.MAX_TTL,
               help="""
Seconds an upload stays in the index after it was stored or failed.

``glance-progress list --since DURATION`` and the exporter show finished
and failed uploads within this window. Keep it at most
``progress_ttl``: a record that expired cannot be shown.

Possible values:
    * An integer from 0 to 2592000

Related options:
    * progress_ttl: keep this at most that
    * progress_discovery
    * ``--since`` of the exporter: uploads stored or failed within it
      are served as series, if they are still in an index

"""),
]

PIPELINE_OPTS = [
    cfg.IntOpt('progress_rbd_writes_in_flight',
               default=16,
               min=1,
               max=64,
               help="""
The most chunk writes one upload keeps in flight to Ceph.

Writes go through librbd's asynchronous API so that Ceph stores chunks
while the next ones are read and hashed. An upload has as many writes
in flight as Ceph is slower than the reading and hashing: on a cluster
that acknowledges a write in a few milliseconds one or two, on one that
takes tens of milliseconds (HDDs, a remote or stretched cluster) up to
this many, which is what keeps such uploads fast (figures in the
benchmarks page). Each write in flight holds its chunk
(``rbd_store_chunk_size`` megabytes) twice, Python's buffer and
librbd's copy; the writes beyond an upload's first come from the
process's budget (``progress_rbd_process_in_flight_mib``), so the
memory of a process stays bounded whatever this is. 1 writes one chunk
at a time, like the stock RBD store, and still overlaps hashing with
the write.

Possible values:
    * An integer from 1 to 64

Related options:
    * rbd_store_chunk_size: the memory of an upload grows with both
    * rados_connect_timeout: bounds every write in flight
    * progress_rbd_process_in_flight_mib: the writes beyond each
      upload's first share it with the process's other uploads

"""),
    cfg.IntOpt('progress_rbd_process_in_flight_mib',
               default=128,
               min=0,
               help="""
Megabytes of writes in flight that all uploads of one process share.

Each upload always keeps one write in flight, as the stock RBD store
holds one chunk. The writes it keeps beyond that (up to
``progress_rbd_writes_in_flight``) come from this budget, which the
uploads running in the same glance-api process (uWSGI threads, or
eventlet) share in equal parts: one upload alone gets all of it, so it
keeps its full speed; sixteen at once get a sixteenth each, so that the
memory of a process stays bounded whatever the number of uploads, and
none of them starves. Each progress_rbd backend of a process has its
own budget of this size.

A write's buffer is held twice (by Python and by librbd), so the
budget's share of a process's memory is about twice this. The default
lets one upload keep the default 16 writes of 8 MiB in flight (15 of
them from the budget: 120 MiB) and keeps a process's uploads within
about 256 MiB beyond what the stock driver would hold for them.

Possible values:
    * 0: every upload keeps one write in flight (and still overlaps
      hashing with it)
    * A positive number of megabytes; less than one chunk
      (``rbd_store_chunk_size``) has the effect of 0

Related options:
    * progress_rbd_writes_in_flight: the most one upload keeps
    * rbd_store_chunk_size: the size of each write

"""),
]

NOTIFICATION_OPTS = [
    cfg.BoolOpt('progress_notifications',
                default=True,
                help="""
Send upload notifications on glance-api's own notification bus.

Each upload into this backend sends ``image.upload.progress`` events
while it runs, and ``image.upload.stored``, ``image.upload.failed``,
``image.upload.stalled`` and ``image.upload.resumed`` when it reaches
those states, with glance-api's own ``[oslo_messaging_notifications]``
settings (driver, transport_url, topics, retry) and its
``default_publisher_id``; ``disabled_notifications`` is honoured as
glance honours it. Nothing else to configure: with glance's default
driver (noop, no notifications at all), nothing is sent and nothing
runs. The events are sent by a background thread of each glance-api
process: a slow, frozen or stopped message broker never slows or fails
an upload. Independent of ``progress_enabled`` (memcached).

Possible values:
    * True: send them when glance-api sends notifications
    * False: never send them

Related options:
    * progress_notification_interval
    * progress_notification_percent_step
    * progress_notification_stall_after
    * ``[oslo_messaging_notifications]`` driver, transport_url, topics,
      retry, and ``[DEFAULT]`` default_publisher_id and
      disabled_notifications: glance-api's own settings, used as they are

"""),
    cfg.FloatOpt('progress_notification_interval',
                 default=60.0,
                 min=1.0,
                 help="""
Minimum time, in seconds, between two progress events of one upload.

An upload sends an ``image.upload.progress`` event when it starts, then
at most one per this many seconds (only if bytes were stored since the
last one), plus one each time it crosses a
``progress_notification_percent_step``. Cinder sends its
``backup.createprogress`` on a 120 s timer; 60 s matches the readers'
stall setting (``--stall-after``, 60 s): a consumer that sees no event
for a minute knows the upload is slow or stalled, and a 20 GB upload
at 50 MB/s sends about 17 events in all. Every event is a message on the
broker and, with Ceilometer, a stored event: lower it only for small
clouds.

Possible values:
    * A number of seconds, at least 1

Related options:
    * progress_notification_percent_step
    * progress_notifications

"""),
    cfg.FloatOpt('progress_notification_percent_step',
                 default=10.0,
                 min=0.0,
                 max=100.0,
                 help="""
Also send a progress event each time an upload crosses this percentage.

With 10 (the default), an upload of known size sends an event at 10 %,
20 %, ... 90 % of its size, whatever its speed, as Cinder's backups
notify every few chunks: at most 10 events for a fast upload, which
the time step alone would leave with only its first and final events.
Uploads of unknown size (chunked transfers) send time-stepped events
only.

Possible values:
    * 0: no percentage steps, the time step only
    * A percentage above 0, at most 100

Related options:
    * progress_notification_interval
    * progress_notifications

"""),
    cfg.FloatOpt('progress_notification_stall_after',
                 default=60.0,
                 min=0.0,
                 help="""
Seconds without stored bytes after which an upload is reported stalled.

When Ceph has acknowledged no bytes of an upload for this long (the
client stopped sending, or Ceph stopped taking writes), an
``image.upload.stalled`` event is sent once, and an
``image.upload.resumed`` event when bytes are stored again. The
background sender's timer detects it, so a stall is reported while the
upload itself waits. 60 s, the readers' ``stall_after``, reports the
same uploads stalled as ``glance-progress`` and the progress endpoint.

Possible values:
    * 0: no stall events
    * A positive number of seconds

Related options:
    * ``[upload_progress]`` stall_after: the same judgement for readers
    * rados_connect_timeout: a Ceph that stopped answering fails the
      upload after about 5.3 times it (``image.upload.failed``,
      ``storage_timeout``)

"""),
]

OPTIONS = PROGRESS_OPTS + DISCOVERY_OPTS + PIPELINE_OPTS + NOTIFICATION_OPTS

# The glance-api paste filter (glance_progress_store.middleware) reads the
# memcached servers and prefix of the stores above; these are its own.
FILTER_GROUP = 'upload_progress'
FILTER_OPTS = [
    cfg.FloatOpt('stall_after',
                 default=60.0,
                 min=0.0,
                 help="""
Seconds without an update after which an upload is reported stalled.

``GET /v2/images/{image_id}/progress`` reports an upload that is still
``uploading`` or ``finalizing`` but has not been updated for this long
with ``state`` ``stalled`` and ``stalled`` true: its glance-api worker
died, or Ceph stopped taking writes. It compares the record's
``updated_at`` (the writing glance-api node's clock) with this node's
clock: keep the clocks in sync.

Possible values:
    * 0 or a positive number of seconds

Related options:
    * progress_min_interval: keep this above it
    * rados_connect_timeout: an upload that Ceph stopped answering is
      ``stalled`` until the store gives up, after about 5.3 times it

"""),
    cfg.FloatOpt('memcached_socket_timeout',
                 default=1.0,
                 min=0.05,
                 help="""
Timeout, in seconds, of the progress endpoint's memcached reads.

A memcached that does not answer within it makes the endpoint answer
503 instead of holding the request: the request holds a glance-api
worker (or thread) for at most this long per memcached server read.
The server is then known down for ``memcached_dead_retry`` seconds,
during which no request waits for it.

Possible values:
    * A positive number of seconds

Related options:
    * progress_memcached_servers
    * memcached_dead_retry

"""),
    cfg.FloatOpt('memcached_dead_retry',
                 default=10.0,
                 min=0.0,
                 help="""
Seconds a memcached server that did not answer is known down.

Dashboards poll the progress endpoint, and each poll that waited
``memcached_socket_timeout`` for a frozen memcached would hold a
glance-api worker: a few pollers would hold them all. So once a server
failed to answer, each glance-api process answers the endpoint's
requests that need it with 503 and a ``Retry-After`` header at once,
without asking it, for this long. Then one request at a time (per
process) asks the server again: if it answers, progress is served again
at once; if not, it is known down for this long again. So a server that
stays down holds at most one worker (or thread) of each process for
``memcached_socket_timeout`` every this many seconds.

Possible values:
    * 0 or a positive number of seconds; 0 asks the server again on the
      next request (still one request at a time per process)

Related options:
    * memcached_socket_timeout
    * progress_memcached_servers

"""),
]


def list_opts():
    """Entry point for oslo-config-generator (``oslo.config.opts``).

    The stock RBD options come first: a progress_rbd backend's section
    holds both. glance_store's RBD driver is imported here, not at the
    top: it imports Ceph's bindings, which the read side never needs.
    """
    from glance_store._drivers import rbd as rbd_driver
    return [('glance_store', rbd_driver.Store.OPTIONS + OPTIONS),
            (FILTER_GROUP, FILTER_OPTS)]
