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

"""Sphinx configuration of the release notes (tox -e releasenotes)."""

extensions = [
    'openstackdocstheme',
    'reno.sphinxext',
]

html_theme = 'openstackdocs'
project = 'glance_progress_store Release Notes'
copyright = 'glance_progress_store maintainers'
master_doc = 'index'
source_suffix = '.rst'
version = ''
release = ''
exclude_patterns = []
pygments_style = 'native'
# Option names (--since) and quotes stay as typed.
smartquotes = False
html_static_path = ['_static']

openstackdocs_repo_name = 'glance_progress_store'
openstackdocs_auto_name = False
openstackdocs_auto_version = False
openstackdocs_use_storyboard = False
openstackdocs_bug_project = 'glance_progress_store'
openstackdocs_bug_tag = 'releasenotes'

# Until 0.1.0 is tagged the repository has no release tag, and reno files
# every note under "0.0.0", which is no release. File them as unreleased
# work instead, which unreleased.rst titles 0.1.0. Once a tag exists this
# changes nothing.
from reno import scanner  # noqa: E402

_current_version = scanner.Scanner._get_current_version


def _untagged_is_unreleased(self, branch=None):
    version = _current_version(self, branch)
    return '0.0.0-untagged' if version == '0.0.0' else version


scanner.Scanner._get_current_version = _untagged_is_unreleased
