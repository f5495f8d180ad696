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

// What Django's pages give Horizon's JavaScript (its JS catalog, the
// static URL), as Horizon's own test-shim.js does.
(function (global) {
  'use strict';

  global.STATIC_URL = '/static/';
  global.WEBROOT = '/';
  global.gettext = function (text) { return text; };
  global.ngettext = function (one, many, n) { return n === 1 ? one : many; };
  global.interpolate = function (fmt, obj, named) {
    if (named) {
      return fmt.replace(/%\(\w+\)s/g, function (match) {
        return String(obj[match.slice(2, -2)]);
      });
    }
    return fmt.replace(/%s/g, function () { return String(obj.shift()); });
  };
  // The plugin modules Django lists in the page (ADD_ANGULAR_MODULES).
  global.horizonPlugInModules = ['horizon.dashboard.glance-progress'];
})(window);
