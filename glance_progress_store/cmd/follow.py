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

"""Following uploads until they end: the one poll loop, and its displays.

``glance-progress watch`` (reading memcached) and ``openstack image
progress show --wait`` (reading glance's endpoint) differ only in how
they read; both draw with :func:`make_display` and loop in
:func:`follow`. Nothing here reads memcached, so the OpenStackClient
plugin can use it without python-memcached.
"""

import os
import time

from glance_progress_store.read import states
from glance_progress_store.read import views


def follow(poll, out, interval, timeout=None):
    """Call ``poll()`` until every upload is final, or ``timeout`` s.

    ``poll()`` returns (views, final): the views to draw, and whether
    each upload has ended. Returns the exit code: the views' own, or
    :data:`states.EXIT_TIMEOUT` when ``timeout`` ran out first.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    display = make_display(out)
    try:
        while True:
            shown, final = poll()
            display.update(shown)
            if final:
                return views.exit_code(shown)
            pause = interval
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    display.message('timed out after %s'
                                    % views.human_duration(timeout))
                    return max(states.EXIT_TIMEOUT, views.exit_code(shown))
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
