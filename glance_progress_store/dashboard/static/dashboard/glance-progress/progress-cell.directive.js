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
    .directive('glanceProgressCell', glanceProgressCell);

  glanceProgressCell.$inject = ['$window'];

  /**
   * @ngdoc directive
   * @name glanceProgressCell
   * @description
   * An image's server-side upload progress, polled while it is in flight:
   * every HORIZON_CONFIG['ajax_poll_interval'] after the previous answer
   * (one request at a time per row), backing off (doubling, up to 30 s)
   * while glance cannot say, none while the tab is hidden, and no more
   * once the record is final. An image in `queued` gets one look (a
   * failed upload puts the image back to queued); an active image, none.
   * `details` shows the record of any image, and says when there is none.
   *
   * @example
   * <glance-progress-cell item="item"></glance-progress-cell>
   * <glance-progress-cell item="ctrl.image" details="true"></glance-progress-cell>
   * @param {Object} $window The window (for STATIC_URL).
   * @returns {Object} The directive.
   */
  function glanceProgressCell($window) {
    return {
      restrict: 'E',
      scope: {item: '<', details: '<?'},
      controller: GlanceProgressCellController,
      controllerAs: 'ctrl',
      bindToController: true,
      templateUrl: $window.STATIC_URL + 'dashboard/glance-progress/progress-cell.html'
    };
  }

  GlanceProgressCellController.$inject = [
    '$scope',
    '$document',
    '$timeout',
    'horizon.dashboard.glance-progress.service'
  ];

  function GlanceProgressCellController($scope, $document, $timeout, progress) {
    var ctrl = this;
    var timer = null;
    var requesting = false;
    var waitingForVisible = false;
    var stopped = false;
    // answers in a row that could not say (glance or memcached down)
    var failures = 0;

    ctrl.views = [];
    ctrl.label = gettext('Upload progress');
    ctrl.message = null;

    ctrl.$onInit = function onInit() {
      if (ctrl.details || progress.inFlight(ctrl.item) || isQueued()) {
        look();
      }
    };
    ctrl.$onDestroy = stop;
    ctrl.$onChanges = function onChanges(changes) {
      // Horizon's table re-lists every ajax_poll_interval: a row that went
      // in flight (queued -> saving) starts polling again.
      if (changes.item && !changes.item.isFirstChange() && stopped &&
          progress.inFlight(ctrl.item)) {
        stopped = false;
        look();
      }
    };

    function isQueued() {
      return ctrl.item && String(ctrl.item.status).toLowerCase() === 'queued';
    }

    function look() {
      timer = null;
      if (stopped || requesting) {
        return;
      }
      if (progress.isHidden()) {
        if (!waitingForVisible) {
          waitingForVisible = true;
          $document[0].addEventListener('visibilitychange', onVisibility);
        }
        return;
      }
      requesting = true;
      progress.get(ctrl.item.id).then(show).finally(function done() {
        requesting = false;
      });
    }

    function onVisibility() {
      if (!progress.isHidden()) {
        $document[0].removeEventListener('visibilitychange', onVisibility);
        waitingForVisible = false;
        $scope.$applyAsync(look);
      }
    }

    function show(answer) {
      if (stopped) {
        return;
      }
      ctrl.message = null;
      if (answer.hidden || answer.supported === false) {
        ctrl.views = [];
      } else if (answer.available) {
        ctrl.views = progress.rows(answer.progress).map(progress.format)
          .filter(function shown(view) { return view !== null; });
        if (ctrl.details && ctrl.views.length === 0) {
          ctrl.message = gettext('No upload record for this image.');
        }
      } else {
        ctrl.views = [];  // no stale bar: glance cannot say now
        ctrl.message = gettext('progress unavailable');
      }
      if (progress.isFinal(answer)) {
        halt();
      } else if (progress.inFlight(ctrl.item) || progress.isMoving(answer)) {
        failures = answer.available ? 0 : failures + 1;
        progress.pollInterval().then(schedule);
      } else {
        halt();  // queued without a moving record: nothing to follow
      }
    }

    function schedule(intervalMs) {
      if (!stopped && timer === null) {
        // no digest of the page for a tick: $http's answer brings one
        timer = $timeout(look, progress.backoff(intervalMs, failures), false);
      }
    }

    function halt() {
      stopped = true;
      if (timer !== null) {
        $timeout.cancel(timer);
        timer = null;
      }
    }

    function stop() {
      halt();
      if (waitingForVisible) {
        $document[0].removeEventListener('visibilitychange', onVisibility);
        waitingForVisible = false;
      }
    }
  }
})();
