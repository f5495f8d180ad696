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

# Copy this file into Horizon's openstack_dashboard/local/enabled/ (see
# doc/source/install/horizon.rst "Installing"). A feature plugin: no dashboard,
# panel or panel group of its own, only an Angular module that extends
# the Images panels (Project and Admin) and a REST view under /api/.
FEATURE = 'glance_progress'

ADD_INSTALLED_APPS = ['glance_progress_store.dashboard']

ADD_ANGULAR_MODULES = ['horizon.dashboard.glance-progress']

ADD_SCSS_FILES = ['dashboard/glance-progress/glance-progress.scss']

# The module's *.module.js, other JS files and HTML templates, from
# glance_progress_store/dashboard/static/.
AUTO_DISCOVER_STATIC_FILES = True
