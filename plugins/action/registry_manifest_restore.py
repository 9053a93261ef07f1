# -*- coding: utf-8 -*-
# Copyright (c) oci_registry.trash contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.oci_registry.trash.plugins.module_utils._restore_manifests import restore
from ansible_collections.oci_registry.trash.plugins.plugin_utils._action_base import TrashAction


class ActionModule(TrashAction):
    MODULE_NAME = 'registry_manifest_restore'
    RULES = dict(required_one_of=[('tag', 'digest', 'entry')], mutually_exclusive=[('tag', 'digest', 'entry')])

    def execute(self, params, client, store):
        result = restore(client, store, params['repository'], tags=params['tag'], digest=params['digest'],
                         entry_id=params['entry'], all_tags=params['all_tags'], force=params['force'],
                         target_repository=params['target_repository'], check_mode=self._task.check_mode,
                         parallel=params['parallel'], progress=self.progress)
        if self._task.diff:
            result['diff'] = {
                'before': {},
                'after': {r['tag']: r['digest'] for r in result['restored']},
            }
        return result
