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

"""The vocabulary: each exit code documented, from the constants."""

from glance_progress_store.read import states


def test_every_exit_code_is_in_the_help():
    codes = {value for name, value in vars(states).items()
             if name.startswith('EXIT_') and isinstance(value, int)}
    documented = {code for code, _ in states.SHOW_CODES + states.ORPHANS_CODES}
    assert codes == documented
    for code, text in states.SHOW_CODES:
        assert '  %-3d %s\n' % (code, text) in states.EXIT_HELP
    for code, text in states.ORPHANS_CODES:
        assert '  %-3d %s\n' % (code, text) in states.ORPHANS_EXIT_HELP


def test_show_codes_and_states_agree():
    assert set(states.STATE_EXIT_CODES.values()) < {
        code for code, _ in states.SHOW_CODES}
    assert states.EXIT_INTERRUPTED == 130 and states.EXIT_USAGE == 64
    assert set(states.ACTIVE) == {states.UPLOADING, states.FINALIZING}
    assert set(states.ORPHAN_STATES).isdisjoint(
        {states.IN_PROGRESS, states.NEW, states.UNREACHABLE, states.NO_POOL})
