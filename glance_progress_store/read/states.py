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

"""The words and numbers that glance-progress prints, defined once.

Operators and cron jobs match on these states and exit codes, so each one
is written here only, and the ``--help`` texts are made from them.
"""

from glance_progress_store import records

# What a record says (the store writes these: see records).
UPLOADING = records.UPLOADING
FINALIZING = records.FINALIZING
STORED = records.STORED
FAILED = records.FAILED
ACTIVE = records.ACTIVE  # not ended
ENDED = (STORED, FAILED)
REASONS = records.REASONS  # why a failed upload failed

# What the readers make of a record, or of its absence.
STALLED = 'stalled'  # active, but not updated for --stall-after seconds
UNKNOWN = 'unknown'  # no record
BAD = 'bad'  # a value this package did not write
UNREACHABLE = 'unreachable'  # memcached (or, for orphans, Ceph)
WAITING = 'waiting'  # watch only: no record yet, within --wait-start

#: An upload that has not ended, as the fleet view counts it.
IN_FLIGHT = ACTIVE + (STALLED,)
#: The order of ``glance-progress list`` and the exporter's page: what
#: needs an operator first (a stalled upload can still be saved), then
#: what is moving, then what ended well.
OPERATOR_ORDER = (STALLED, FAILED, BAD, UNKNOWN, UPLOADING, FINALIZING,
                  STORED)

# What an unfinished RBD image is (orphans); STALLED, FAILED, BAD and
# UNREACHABLE mean the same there.
IN_PROGRESS = 'in progress'  # record active and recent
NEW = 'new'  # no record, created less than --stall-after ago
NO_RECORD = 'no record'  # record expired, or progress disabled
INCONSISTENT = 'inconsistent'  # record stored, image without its snapshot
NO_POOL = 'no pool'  # the pool does not exist
ORPHAN_STATES = (STALLED, FAILED, NO_RECORD, BAD, INCONSISTENT)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ORPHANS = 1  # orphans: the cron job's alert
EXIT_STALLED = 2
EXIT_UNKNOWN = 3
EXIT_UNREACHABLE = 4
EXIT_TIMEOUT = 5
EXIT_USAGE = 64  # not argparse's 2, which is "stalled"
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT

# The exit code of each state of show and watch; other states are 0.
STATE_EXIT_CODES = {FAILED: EXIT_FAILED, STALLED: EXIT_STALLED,
                    UNKNOWN: EXIT_UNKNOWN, BAD: EXIT_UNKNOWN,
                    UNREACHABLE: EXIT_UNREACHABLE}

_INTERRUPTED = (EXIT_INTERRUPTED, 'interrupted (Ctrl-C)')
SHOW_CODES = (
    (EXIT_OK, 'every record shown is %s, %s or %s (watch: %s)'
     % (UPLOADING, FINALIZING, STORED, STORED)),
    (EXIT_FAILED, 'an upload %s' % FAILED),
    (EXIT_STALLED, 'an upload %s: no update for --stall-after seconds'
     % STALLED),
    (EXIT_UNKNOWN, 'no record (%s), or a value this package did not write '
     '(%s)' % (UNKNOWN, BAD)),
    (EXIT_UNREACHABLE, 'memcached %s' % UNREACHABLE),
    (EXIT_TIMEOUT, 'watch: --timeout reached before every upload ended'),
    (EXIT_USAGE, 'usage or configuration error'),
    _INTERRUPTED,
)
ORPHANS_CODES = (
    (EXIT_OK, 'no orphan: every unfinished image is an upload %s (or %s)'
     % (IN_PROGRESS, NEW)),
    (EXIT_ORPHANS, 'orphans found: %s' % ', '.join(ORPHAN_STATES)),
    (EXIT_UNREACHABLE, 'Ceph or memcached %s' % UNREACHABLE),
    (EXIT_USAGE, 'usage or configuration error (a missing pool, no Ceph '
     'bindings)'),
    _INTERRUPTED,
)

EXPORTER_CODES = (
    (EXIT_OK, 'stopped by SIGTERM'),
    (EXIT_UNREACHABLE, 'cannot listen: address in use or not assignable'),
    (EXIT_USAGE, 'usage or configuration error (a bad --listen)'),
    _INTERRUPTED,
)
LINK_CODES = (
    (EXIT_OK, 'rados and rbd import in the venv'),
    (EXIT_FAILED, 'they were linked but do not import (the message says '
     'why), or the venv could not be written to'),
    (EXIT_USAGE, 'usage or configuration error: not a venv, no bindings in '
     'DIR, or bindings built for another Python version than the venv\'s'),
    _INTERRUPTED,
)


def exit_help(codes):
    """The ``exit codes`` paragraph of ``--help``."""
    return 'exit codes (the highest applicable one wins):\n' + ''.join(
        '  %-3d %s\n' % (code, text) for code, text in codes)


EXIT_HELP = exit_help(SHOW_CODES)
ORPHANS_EXIT_HELP = exit_help(ORPHANS_CODES)
