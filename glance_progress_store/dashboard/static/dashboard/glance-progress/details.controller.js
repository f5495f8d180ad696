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

  angular
    .module('horizon.dashboard.glance-progress')
    .controller('horizon.dashboard.glance-progress.DetailsController',
                DetailsController);

  DetailsController.$inject = [
    '$scope',
    'horizon.dashboard.glance-progress.service'
  ];

  /**
   * The "Upload progress" tab of an image's details: the cell once glance
   * said it serves progress, a sentence once it said it does not.
   * @param {Object} $scope The tab's scope (its context has the image).
   * @param {Object} progress The plugin's service.
   */
  function DetailsController($scope, progress) {
    var ctrl = this;
    ctrl.image = null;
    ctrl.supported = null;
    progress.supported().then(function yes() {
      ctrl.supported = true;
    }, function no() {
      ctrl.supported = false;
    });
    $scope.context.loadPromise.then(function onImage(response) {
      ctrl.image = response.data;
    });
  }
})();
