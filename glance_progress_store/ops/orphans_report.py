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

"""The text of ``glance-progress orphans``: table, summary and commands.

Kept apart from the Ceph scan (:mod:`glance_progress_store.ops.orphans`) so
that what an operator reads, and may paste into a shell, is in one place.
"""

import shlex

from glance_progress_store.read import states
from glance_progress_store.read import views


def shell_word(text):
    """`text` quoted for a POSIX shell (bash's $'...' for control chars)."""
    if all(ch.isprintable() for ch in text):
        return shlex.quote(text)
    escaped = ''.join(
        '\\' + ch if ch in '\\\'' else
        ch if ch.isprintable() else '\\x%02x' % ord(ch) if ord(ch) < 256
        else '\\u%04x' % ord(ch) if ord(ch) < 0x10000 else '\\U%08x' % ord(ch)
        for ch in text)
    return "$'%s'" % escaped


def rbd_commands(finding):
    """The commands that remove an orphan's RBD image, once checked."""
    target = finding.target
    base = ['rbd']
    if target.ceph_conf:
        base += ['-c', target.ceph_conf]
    if target.user:
        base += ['--id', target.user]
    base += ['-p', target.pool]
    image = shell_word(finding.image)
    words = ' '.join(shlex.quote(w) for w in base)
    commands = []
    if finding.snapshots:  # an unprotected 'snap': died while finalizing
        commands.append('%s snap purge %s' % (words, image))
    commands.append('%s rm %s' % (words, image))
    return commands


def action(finding):
    """The short advice of the table's last column."""
    state = finding.state
    if state == states.IN_PROGRESS:
        return 'none: upload in progress'
    if state == states.NEW:
        return 'none yet: just created, its first record may be on its way'
    if state == states.STALLED:
        return 'remove: its glance-api worker died'
    if state == states.FAILED:
        return 'remove: the cleanup after the failure (%s) failed' % (
            finding.reason or 'no reason')
    if state == states.UNREACHABLE and finding.image is None:
        return 'check Ceph: %s' % finding.error
    if state == states.UNREACHABLE:
        return 'run again once memcached answers: %s' % finding.error
    if state == states.NO_POOL:
        return 'check rbd_store_pool or --pool: %s' % finding.error
    if state == states.BAD:
        return 'check in glance, then remove: %s' % finding.error
    if state == states.INCONSISTENT:
        return 'check in glance, then remove: record stored, no snapshot'
    return 'check in glance, then remove'  # no record


def printable(text):
    """A name as it can be shown on one line: control characters escaped."""
    return ''.join(ch if ch.isprintable() else
                   ch.encode('unicode_escape').decode('ascii')
                   for ch in text)


def summary(findings, counted):
    """``3 unfinished of 120 images in images, images2: 2 orphans ...``."""
    pools = ', '.join(sorted({pool for pool, _ in counted}))
    images = [f for f in findings if f.image is not None]
    orphans = [f for f in images if f.orphan]
    text = '%d unfinished of %d images in %s: %d orphan%s' % (
        len(images), sum(n for _, n in counted), pools or 'no pool',
        len(orphans), '' if len(orphans) == 1 else 's')
    if orphans:
        text += ' (%s)' % _counts(orphans)
    others = [f for f in images if not f.orphan]
    if others:
        text += ', ' + _counts(others)
    problems = [f for f in findings if f.image is None]
    if problems:
        text += '. Not checked: %s' % ', '.join(
            '%s (%s)' % (f.pool, f.state) for f in problems)
    return text + '.'


def _counts(findings):
    by_state = {}
    for finding in findings:
        by_state[finding.state] = by_state.get(finding.state, 0) + 1
    return ', '.join('%d %s' % (n, state)
                     for state, n in sorted(by_state.items()))


REMOVAL_HELP = """\
Never remove an image that glance uses. For each orphan, check first that
`glance image-show ID` answers "not found", or a status other than active
(an upload whose worker died leaves the glance image "saving"), then
remove the RBD image:"""


def removal_text(findings):
    orphans = [f for f in findings if f.orphan]
    if not orphans:
        return ''
    lines = [REMOVAL_HELP]
    for finding in orphans:
        lines.append('')
        lines.append('  glance image-show %s' % shell_word(finding.image))
        lines += ['  ' + c for c in rbd_commands(finding)]
    return '\n'.join(lines)


def table(findings):
    """The findings as aligned columns under a header."""
    def progress(f):
        if f.bytes is None:
            return '-'
        return '%s / %s' % (views.human_size(f.bytes),
                            views.human_size(f.total))

    rows = [('POOL', 'IMAGE', 'STATE', 'BYTES/TOTAL', 'AGE', 'ACTION')]
    rows += [(f.pool, '-' if f.image is None else printable(f.image),
              f.state, progress(f),
              '-' if f.age_s is None else views.human_duration(f.age_s),
              action(f)) for f in findings]
    return views.columns(rows)
