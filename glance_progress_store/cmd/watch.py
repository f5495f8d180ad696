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

"""``glance-progress watch``: follow uploads until each one ends.

The polling (what counts as ended, how long a restarting memcached is
given) is kept apart from the two displays: tqdm bars on a terminal, one
stable line per change for scripts.
"""

import dataclasses
import os
import time

from glance_progress_store.read import lookup as lookup_mod
from glance_progress_store.read import states
from glance_progress_store.read import views


class Watch:
    """Polls the records until every upload ended, one bar or line each."""

    def __init__(self, settings, image_ids, out, backend=None,
                 stall_after=60.0, interval=1.0, timeout=None,
                 wait_start=30.0):
        self.image_ids = image_ids
        self.backend = backend
        self.stall_after = stall_after
        self.interval = interval
        self.timeout = timeout
        self.wait_start = wait_start
        self.lookup = lookup_mod.Lookup(settings, stall_after)
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
        for image_id in self.image_ids:
            read = [self._read(image_id, name, source, now, mono)
                    for name, source in self.lookup.targets(self.backend)]
            found = [r for r in read if r[0].state != states.UNKNOWN]
            named = [r for r in found if r[0].backend is not None]
            if named:  # the plain keys repeat one of these records
                found = named + [r for r in found if r[0].error and
                                 r[0].backend is None]
            if not found:
                waiting = mono - self.started < self.wait_start
                state = states.WAITING if waiting else states.UNKNOWN
                found = [(dataclasses.replace(read[0][0], state=state),
                          not waiting)]
            rows += found
        return rows

    def _read(self, image_id, backend, source, now, mono):
        record, error = self.lookup.read(image_id, backend, source)
        if error is not None and error.state == states.UNREACHABLE:
            # wrong servers: give up at once; a restart: give it time
            down_for = mono - self.down_since.setdefault(source, mono)
            return error, (source not in self.reachable or
                           down_for >= self.stall_after)
        if error is not None:
            return error, True
        self.reachable.add(source)
        self.down_since.pop(source, None)
        key = (image_id, backend, source)
        if record is None:  # expired, or memcached restarted: keep the last
            record = self.last_records.get(key)
        else:
            self.last_records[key] = record
        view = views.view_of(image_id, backend, record, now,
                             self.stall_after)
        return view, view.state not in states.ACTIVE

    def run(self):
        """Poll until every upload ended or --timeout; the exit code."""
        deadline = (None if self.timeout is None
                    else self.started + self.timeout)
        display = make_display(self.out)
        try:
            while True:
                rows = self.rows()
                shown = [view for view, _ in rows]
                display.update(shown)
                if all(final for _, final in rows):
                    return views.exit_code(shown)
                pause = self.interval
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        display.message('timed out after %s'
                                        % views.human_duration(self.timeout))
                        return max(states.EXIT_TIMEOUT,
                                   views.exit_code(shown))
                    pause = min(pause, left)
                time.sleep(pause)
        finally:
            display.close()


def make_display(out):
    """Bars on a terminal, lines otherwise: ``update(views)``,
    ``message(text)`` and ``close()``; ``openstack image progress show
    --wait`` draws its progress with it too."""
    return _Bars(out) if _is_terminal(out) else _Lines(out)


def _is_terminal(out):
    """A terminal with a known width: tqdm draws nothing in 0 columns
    (a pty without a window size, as under `script` or some CI runners)."""
    if not out.isatty():
        return False
    try:
        return os.get_terminal_size(out.fileno()).columns >= 20
    except (OSError, ValueError):
        return False


class _Lines:
    """Not a terminal: a plain line whenever a record changes."""

    def __init__(self, out):
        self.out = out
        self.shown = {}

    def update(self, shown):
        for view in shown:
            key = (view.image_id, view.backend)
            seen = (view.state, view.bytes, view.total, view.updated_at,
                    view.error)
            if self.shown.get(key) != seen:
                self.shown[key] = seen
                self.out.write(views.plain_line(view) + '\n')
        self.out.flush()

    def message(self, text):
        self.out.write('# %s\n' % text)

    def close(self):
        self.out.flush()


class _Bars:
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

    def update(self, shown):
        keys = [(v.image_id, v.backend) for v in shown]
        width = max(len(views.label(v)) for v in shown)
        for key, view in zip(keys, shown):
            bar = self._bar(key, keys)
            info = (views.bar_info(view)
                    .replace('{', '{{').replace('}', '}}'))
            bar.total = view.total or None
            if view.bytes is not None:
                bar.n = view.bytes
            bar.desc = views.label(view).ljust(width)
            bar.bar_format = ('{desc} |{bar:30}| ' if bar.total
                              else '{desc} ') + info
            bar.refresh()

    def message(self, text):
        self._tqdm.write(text, file=self.out)

    def close(self):
        for bar in self.bars.values():
            bar.close()
