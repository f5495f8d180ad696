/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License. You may obtain
 * a copy of the License at
 *
 *      http://www.apache.org/licenses/LICENSE-2.0
 *
 * Unless required by applicable law or agreed to in writing, software
 * distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
 * WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
 * License for the specific language governing permissions and limitations
 * under the License.
 */

(function() {
  'use strict';

  /**
   * @ngdoc overview
   * @name horizon.dashboard.glance-progress
   * @description
   * Server-side upload progress in the Images panels (Project and Admin):
   * a "Progress" column after "Status", and an "Upload progress" tab in
   * an image's details. The column appears only when glance has the
   * progress filter, so the panel is then exactly Horizon's; the tab then
   * says that glance does not report upload progress.
   */
  angular
    .module('horizon.dashboard.glance-progress', [
      'horizon.framework',
      'horizon.app.core.openstack-service-api',
      'horizon.app.core.images'
    ])
    // Polls every HORIZON_CONFIG['ajax_poll_interval'] (Horizon's
    // AJAX_POLL_INTERVAL setting, 2500 ms by default), and backs off up
    // to this while glance cannot say.
    .constant('horizon.dashboard.glance-progress.maxDelayMs', 30000)
    .constant('horizon.dashboard.glance-progress.column', 'glanceProgress')
    .run(register);

  register.$inject = [
    '$window',
    'horizon.framework.conf.resource-type-registry.service',
    'horizon.app.core.images.resourceType',
    'horizon.dashboard.glance-progress.service',
    'horizon.dashboard.glance-progress.column'
  ];

  /**
   * Adds the column and the details tab to Horizon's image resource type.
   * @param {Object} $window The window (for STATIC_URL).
   * @param {Object} registry Horizon's resource-type registry.
   * @param {string} imageType The image resource type's name.
   * @param {Object} progress The plugin's service.
   * @param {string} columnId The column's id.
   */
  function register($window, registry, imageType, progress, columnId) {
    var basePath = $window.STATIC_URL + 'dashboard/glance-progress/';
    var images = registry.getResourceType(imageType);
    // The table checks a column's `allowed` promise: while glance's answer
    // is not in (asked again while glance cannot say), or when it has no
    // progress filter, there is no column.
    images.tableColumns.after('status', {
      id: columnId,
      title: gettext('Progress'),
      priority: 1,
      allowed: progress.supported,
      template: '<glance-progress-cell item="item"></glance-progress-cell>'
    });
    // Asked lazily (the column's `allowed` runs when an Images table is
    // drawn): a page that is not logged in must not call /api/ at all.
    images.detailsViews.append({
      id: 'glanceUploadProgress',
      name: gettext('Upload progress'),
      template: basePath + 'details.html'
    });
  }
})();
