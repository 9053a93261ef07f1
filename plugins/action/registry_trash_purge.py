# -*- coding: utf-8 -*-
# Copyright (c) oci_registry.trash contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.oci_registry.trash.plugins.module_utils._trash_maintenance import purge
from ansible_collections.oci_registry.trash.plugins.plugin_utils._action_base import TrashAction

FILTERS = ('registry_url', 'repository', 'state', 'older_than', 'newer_than')
# registry_url is left out: module_defaults often sets it, and must not turn an empty task into "purge it all".
SELECTORS = ('entry', 'repository', 'state', 'older_than', 'newer_than')


class ActionModule(TrashAction):
    MODULE_NAME = 'registry_trash_purge'
    USES_REGISTRY = False
    # registry_url may come from module_defaults, so it may stand beside entry (and is then ignored).
    RULES = dict(required_one_of=[SELECTORS], mutually_exclusive=[('entry', name) for name in SELECTORS[1:]])

    def execute(self, params, client, store):
        filters = {} if params['entry'] is not None else {name: params[name] for name in FILTERS}
        return purge(store, entry_ids=params['entry'], check_mode=self._task.check_mode, **filters)
