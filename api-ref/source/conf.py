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

"""Sphinx configuration of the API reference (tox -e api-ref)."""

extensions = [
    'os_api_ref',
    'openstackdocstheme',
]

html_theme = 'openstackdocs'
html_theme_options = {
    'sidebar_dropdown': 'api_ref',
    'sidebar_mode': 'toc',
}

project = 'glance_progress_store: Upload Progress API'
copyright = 'glance_progress_store maintainers'
master_doc = 'index'
source_suffix = '.rst'
add_module_names = False
show_authors = False
pygments_style = 'native'
# Option names (--since) and quotes stay as typed.
smartquotes = False

openstackdocs_repo_name = 'glance_progress_store'
openstackdocs_auto_name = False
openstackdocs_auto_version = False
openstackdocs_use_storyboard = False
openstackdocs_bug_project = 'glance_progress_store'
openstackdocs_bug_tag = 'api-ref'
