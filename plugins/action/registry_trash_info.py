# -*- coding: utf-8 -*-
# Copyright (c) oci_registry.trash contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.oci_registry.trash.plugins.module_utils._trash_maintenance import trash_info
from ansible_collections.oci_registry.trash.plugins.plugin_utils._action_base import TrashAction

FILTERS = ('registry_url', 'repository', 'tag', 'digest', 'state', 'older_than', 'newer_than')


class ActionModule(TrashAction):
    MODULE_NAME = 'registry_trash_info'
    USES_REGISTRY = False

    def execute(self, params, client, store):
        return trash_info(store, **{name: params[name] for name in FILTERS})
