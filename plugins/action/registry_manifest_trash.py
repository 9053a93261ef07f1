# -*- coding: utf-8 -*-
# Copyright (c) oci_registry.trash contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.oci_registry.trash.plugins.module_utils._trash_manifests import trash
from ansible_collections.oci_registry.trash.plugins.plugin_utils._action_base import TrashAction


class ActionModule(TrashAction):
    MODULE_NAME = 'registry_manifest_trash'
    RULES = dict(mutually_exclusive=[('tag', 'digest')], required_one_of=[('tag', 'digest')])

    def execute(self, params, client, store):
        result = trash(client, store, params['repository'], tags=params['tag'], digest=params['digest'],
                       scope=params['scope'], reason=params['reason'], keep_blobs=params['keep_blobs'],
                       check_mode=self._task.check_mode,
                       parallel=params['parallel'], progress=self.progress)
        if self._task.diff:
            result['diff'] = {
                'before': {t: e['digest'] for e in result['entries'] for t in e['removed_tags'] + e['other_tags']},
                'after': {t: e['digest'] for e in result['entries'] for t in e['other_tags']},
            }
        return result
