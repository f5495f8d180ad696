"""Reading progress records back, for the CLI, dashboards and tests.

python-memcached unpickles values flagged as pickles and decompresses
flagged values; a memcached that others can write to must not become code
execution in an operator's shell, so this reader takes every value as raw
bytes and accepts only what the store writes: decimal text and JSON.
"""

import memcache

from glance_progress_store import records

# python-memcached's flags for the values the store writes.
_PLAIN_FLAGS = (0, memcache.Client._FLAG_TEXT, memcache.Client._FLAG_INTEGER,
                memcache.Client._FLAG_LONG)
MAX_STATUS_LENGTH = 4096


class _RawValue(object):
    __slots__ = ('flags', 'data')

    def __init__(self, flags, data):
        self.flags = flags
        self.data = data


class _RawClient(memcache.Client):
    """A client that never interprets values: no unpickling, no zlib."""

    def _recv_value(self, server, flags, rlen):
        buf = server.recv(rlen + 2)
        if len(buf) != rlen + 2:
            raise memcache._Error('received %d bytes when expecting %d'
                                  % (len(buf), rlen + 2))
        return _RawValue(flags, buf[:-2])


class MemcachedUnavailable(Exception):
    """None of the memcached servers answered."""


def _text(key, value, limit):
    if value.flags not in _PLAIN_FLAGS:
        raise records.BadRecord(
            '%s holds a value this package did not write (memcached flags '
            '%#x: pickled or compressed data is never loaded)'
            % (key, value.flags))
    if len(value.data) > limit:
        raise records.BadRecord('%s holds %d bytes, more than a progress '
                                'record' % (key, len(value.data)))
    try:
        return value.data.decode('utf-8')
    except UnicodeDecodeError:
        raise records.BadRecord('%s is not UTF-8 text' % key)


def _size(key, value):
    text = _text(key, value, 32)
    if not text.isdigit():
        raise records.BadRecord('%s is not a decimal size: %r'
                                % (key, text[:40]))
    return int(text)


class ProgressReader(object):
    """Reads the progress records written by the progress_rbd store."""

    def __init__(self, servers, prefix='', socket_timeout=3.0):
        self.servers = list(servers)
        self.prefix = prefix
        # A short dead_retry: a long-lived reader (watch, a dashboard)
        # sees a restarted memcached again within a second, not 30 s.
        self._client = _RawClient(self.servers,
                                  socket_timeout=socket_timeout,
                                  dead_retry=1)

    def check_servers(self):
        """Raise MemcachedUnavailable unless every server answers."""
        answered = {name.split(' ')[0] for name, _ in
                    self._client.get_stats()}
        missing = [s for s in self.servers
                   if s not in answered and 'inet:' + s not in answered]
        if missing:
            raise MemcachedUnavailable(
                'memcached %s did not answer' % ', '.join(missing))

    def get(self, image_id, backend=None):
        """The record of an image (in a backend), or None if there is none.

        :raises: records.BadRecord when the keys hold values that the
                 store did not write
        """
        keys = records.keys_for(image_id, backend, self.prefix)
        values = self._client.get_multi(list(keys.all()))
        status = values.get(keys.status)
        if status is None:
            return None
        record = records.ProgressRecord.from_json(
            _text(keys.status, status, MAX_STATUS_LENGTH))
        for key in (keys.total, keys.uploading):
            if key in values:
                _size(key, values[key])
        return record

    def raw_sizes(self, image_id, backend=None):
        """The two size keys as the seed's dashboards read them."""
        keys = records.keys_for(image_id, backend, self.prefix)
        values = self._client.get_multi([keys.total, keys.uploading])
        return tuple(_size(k, values[k]) if k in values else None
                     for k in (keys.total, keys.uploading))
