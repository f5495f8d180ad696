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

"""The one module that talks to python-memcached.

Everything the package needs from memcached goes through here, as tooz
keeps one module per client library:

* the server-list grammar (:func:`parse_servers`), exactly the one the
  client accepts, so that a list that passes validation is one the
  publisher and the CLI can connect to;
* which server holds a key (:func:`server_index`, python-memcached's own
  rule, without its re-hashing to another server when one is down: a
  record must never move to a server where readers will not look);
* :class:`Connection`, one server, values taken and given as raw bytes
  with flags 0: nothing is ever pickled, unpickled or decompressed, so
  clients in any language read the same bytes;
* one failure translator: every error of the client library or the
  socket becomes :class:`ServerUnavailable`, naming the server and why.
"""

import binascii
import dataclasses
import socket

import memcache

# memcached reads an expiry above 30 days as an absolute Unix time.
MAX_TTL = 30 * 24 * 3600
DEFAULT_PORT = 11211

SERVER_FORMS = ('HOST:PORT', 'inet:HOST:PORT', 'inet6:[ADDRESS]:PORT',
                'unix:/PATH')


class MemcachedError(Exception):
    """Base of this module's errors."""


class BadServer(MemcachedError, ValueError):
    """A server entry the memcached client cannot connect to."""


class ServerUnavailable(MemcachedError):
    """A server did not answer, refused, or is not a memcached server."""

    def __init__(self, server, why):
        self.server = server
        self.why = why
        super().__init__('memcached %s %s' % (server, why))

    @classmethod
    def of_all(cls, errors):
        """One error for the failures of several servers."""
        if len(errors) == 1:
            return errors[0]
        error = cls(', '.join(e.server for e in errors),
                    '; '.join(e.why for e in errors))
        error.args = ('; '.join(str(e) for e in errors),)
        return error


def parse_server(entry):
    """``entry`` checked against python-memcached's grammar; BadServer if not.

    The forms are those of :data:`SERVER_FORMS`; PORT defaults to 11211,
    as the client has it.
    """
    if not isinstance(entry, str) or not entry.strip():
        raise BadServer('empty server entry')
    text = entry.strip()
    if any(ch.isspace() for ch in text):
        raise BadServer('%r contains whitespace: separate servers with '
                        'commas' % text)
    if text.startswith('['):
        raise BadServer('%r: write an IPv6 server as inet6:%s'
                        % (text, text))
    try:
        host = memcache._Host(text)
    except ValueError:
        raise BadServer('%r is not one of %s' % (text,
                                                 ', '.join(SERVER_FORMS)))
    if host.family != socket.AF_UNIX:
        if not host.ip:
            raise BadServer('%r has no host' % text)
        if not 0 < host.port < 65536:
            raise BadServer('%r: the port must be 1 to 65535' % text)
    elif not host.address:
        raise BadServer('%r has no socket path' % text)
    return text


def parse_servers(entries):
    """The server entries of an option or a command line, checked.

    ``entries`` is a list (an oslo.config ListOpt) or a comma separated
    string. Raises BadServer naming the first bad entry.
    """
    if isinstance(entries, str):
        entries = entries.split(',')
    servers = tuple(parse_server(e) for e in entries or () if e.strip())
    if not servers:
        raise BadServer('no memcached server given')
    return servers


def server_index(key, count):
    """Which of ``count`` servers holds ``key``.

    python-memcached's rule (CRC-32 of the key, bits 16 to 30, modulo the
    number of servers), so that python-memcached clients given the same
    list in the same order find the records.
    """
    if count == 1:
        return 0
    digest = binascii.crc32(key.encode('utf-8')) & 0xffffffff
    return ((digest >> 16) & 0x7fff) % count


@dataclasses.dataclass(frozen=True)
class RawValue:
    """A value as memcached holds it: its flags and its bytes."""

    flags: int
    data: bytes


class _RawClient(memcache.Client):
    """python-memcached that never interprets values: no unpickling, no zlib.
    """

    def _recv_value(self, server, flags, rlen):
        buf = server.recv(rlen + 2)
        if len(buf) != rlen + 2:
            raise memcache._Error('received %d bytes when expecting %d'
                                  % (len(buf), rlen + 2))
        return RawValue(flags, buf[:-2])


# What the client raises on a broken connection or a garbled answer.
_CLIENT_ERRORS = (OSError, EOFError, ValueError, memcache._Error,
                  memcache._ConnectionDeadError)


class Connection:
    """One memcached server, raw bytes in and out, bound to the thread
    that made it.

    python-memcached's client is a ``threading.local``: used from another
    thread, it silently opens a connection of that thread's, whose
    failures this adapter never sees. Make one per thread; only
    :meth:`close` may be called from any thread.

    python-memcached swallows most errors and only marks the server dead;
    here the mark is turned into :class:`ServerUnavailable` with its
    reason, and the client never waits out a dead period of its own: the
    caller decides when to try again.
    """

    def __init__(self, server, socket_timeout):
        self.server = server
        self.socket_timeout = socket_timeout
        self._client = _RawClient([server], socket_timeout=socket_timeout,
                                  dead_retry=0, cache_cas=True)
        self._host = self._client.servers[0]
        self._why = None
        # mark_dead() logs its reason through debuglog(), and only there.
        self._host.debuglog = self._note

    def _note(self, text):
        self._why = text

    def _call(self, what, function, *args, **kwargs):
        self._host.deaduntil = 0
        self._why = None
        try:
            result = function(*args, **kwargs)
        except _CLIENT_ERRORS as e:
            self._host.mark_dead(str(e))
            raise ServerUnavailable(self.server, self._reason(what, e)) \
                from e
        if self._host.deaduntil:
            raise ServerUnavailable(self.server, self._reason(what))
        return result

    def _reason(self, what, error=None):
        text = str(error) if error is not None else (self._why or '')
        if isinstance(error, (socket.timeout, TimeoutError)) or (
                'timed out' in text):
            return 'did not answer %s within %g s' % (what,
                                                      self.socket_timeout)
        if 'refused' in text.lower():
            return 'refused the connection'
        return 'failed during %s: %s' % (what, text or 'connection lost')

    def set_many(self, values, ttl):
        """Store ``{key: bytes}`` with flags 0; raises ServerUnavailable.

        A key the server answered anything but STORED for also counts as
        a failure of the server.
        """
        for value in values.values():
            if type(value) is not bytes:
                raise TypeError('values are stored as bytes, got %r'
                                % type(value))
        not_stored = self._call('set', self._client.set_multi, values,
                                time=ttl)
        if not_stored:
            raise ServerUnavailable(self.server, 'did not store %s'
                                    % ', '.join(sorted(not_stored)))

    def get_many(self, keys):
        """``{key: RawValue}`` of the keys that exist."""
        return self._call('get', self._client.get_multi, list(keys))

    def add(self, key, value, ttl):
        """Store ``value`` only if ``key`` does not exist; True if stored."""
        return bool(self._call('add', self._client.add, key, value,
                               time=ttl))

    def gets(self, key):
        """The RawValue of ``key`` (or None), remembered for :meth:`cas`."""
        self._client.reset_cas()
        return self._call('gets', self._client.gets, key)

    def cas(self, key, value, ttl):
        """Store ``value`` only if ``key`` is unchanged since :meth:`gets`.

        True if stored; False if someone else changed or removed it since.
        python-memcached silently sends a plain ``set`` when it holds no
        cas id for the key (no :meth:`gets` before, or it found nothing),
        which would overwrite a concurrent update: that is refused here.
        """
        if key.encode('utf-8') not in self._client.cas_ids:
            raise MemcachedError('cas of %s without a gets that found it'
                                 % key)
        try:
            return bool(self._call('cas', self._client.cas, key, value,
                                   time=ttl))
        finally:
            self._client.reset_cas()

    def delete(self, key):
        self._call('delete', self._client.delete, key)

    def version(self):
        """The server's version; ServerUnavailable if it is not memcached.

        A cheap probe that stores nothing, used before reading and after a
        failure: a socket that accepts but answers something else (an HTTP
        server) is not a memcached.
        """
        def ask():
            if not self._host.connect():
                return None
            self._host.send_cmd('version')
            # Not the client's readline(): it waits for a CRLF that an
            # HTTP server never sends, then reports a closed connection.
            answer = b''
            while b'\r\n' not in answer and len(answer) < 128:
                data = self._host.socket.recv(128)
                if not data:
                    break
                answer += data
            if not answer:
                self._host.mark_dead('connection closed')
            return answer.split(b'\r\n')[0]

        line = self._call('version', ask)
        if not line or not line.startswith(b'VERSION '):
            self._host.mark_dead('not memcached')
            raise ServerUnavailable(
                self.server, 'is not a memcached server (answered %r)'
                % (line or b'')[:40])
        return line[len(b'VERSION '):].decode('ascii', 'replace')

    def close(self):
        """Close the socket of the thread that made this connection, from
        any thread (the publisher closes a dead thread's)."""
        self._host.close_socket()
