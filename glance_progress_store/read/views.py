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

"""What an operator sees of a progress record, and how it is printed.

Pure functions, with no I/O: a record read from memcached becomes a
:class:`View` (stalled if it stopped moving), which ``show``, ``watch``
and their exit codes are made of.
"""

import dataclasses
import json

from glance_progress_store.read import states

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
class View:
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
        return View(image_id, backend, states.UNKNOWN)
    age = max(0.0, now - record.updated_at)
    state = record.state
    if state in states.ACTIVE and age > stall_after:
        state = states.STALLED
    elapsed = record.updated_at - record.started_at
    rate = record.bytes / elapsed if elapsed > 0 else None
    eta = None
    if state in states.ACTIVE and record.total and rate:
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
    if view.total is not None and view.percent is not None:
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
    elif view.state == states.UNKNOWN:
        add('note', 'no record: not started, expired, or written to '
            'other servers or prefix')
    if view.bytes is None:
        return '\n'.join(lines)
    if view.reason:
        add('reason', view.reason)
    size = '' if view.total is not None else ' (size not known yet)'
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
        progress = '%d/%s' % (view.bytes,
                              '?' if view.total is None else view.total)
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
    if view.state == states.STALLED:
        parts.append('no update for ' + human_duration(view.age_s))
    if view.reason:
        parts.append(view.reason)
    return '  '.join(parts)


def operator_order(found):
    """The views in :data:`states.OPERATOR_ORDER`, the oldest upload first
    within a state: what ``list`` and the exporter's page show."""
    rank = {state: n for n, state in enumerate(states.OPERATOR_ORDER)}
    return sorted(found, key=lambda v: (
        rank.get(v.state, len(rank)), v.started_at or 0.0, v.image_id,
        v.backend or ''))


def exit_code(views):
    codes = [states.STATE_EXIT_CODES.get(v.state, states.EXIT_OK)
             for v in views]
    return max(codes or [states.EXIT_OK])


TABLE_COLUMNS = ('IMAGE', 'BACKEND', 'STATE', 'PROGRESS', 'RATE', 'ETA',
                 'AGE')


def table(found):
    """``list``'s aligned columns under a header."""
    rows = [TABLE_COLUMNS]
    for view in found:
        rows.append((
            view.image_id, view.backend or '-', view.state,
            '-' if view.bytes is None else progress_text(view),
            human_rate(view.rate_bytes_per_s),
            '-' if view.eta_s is None else human_duration(view.eta_s),
            '-' if view.age_s is None else human_duration(view.age_s)))
    return columns(rows)


def columns(rows):
    """Rows of cells as aligned columns, two spaces apart; the first row
    is the header. The one table layout of the CLI."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return '\n'.join('  '.join(cell.ljust(width) for cell, width in
                               zip(row, widths)).rstrip() for row in rows)


def from_fields(data):
    """The View of the progress endpoint's JSON (its extra fields are
    glance's): what ``openstack image progress`` reads over HTTP."""
    return View(**{f.name: data.get(f.name)
                   for f in dataclasses.fields(View)})
