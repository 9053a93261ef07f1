# -*- coding: utf-8 -*-
# Copyright (c) oci_registry.trash contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: only its own modules may extend it; no compatibility promise outside it.
# The argument spec of every module is derived from these docs (plugins/plugin_utils/_action_base.py).

from __future__ import annotations


class ModuleDocFragment:

    DOCUMENTATION = r'''
options:
  registry_url:
    description:
      - Base URL of the registry, with scheme, host and optional port, for example V(https://registry.example.com)
        or V(http://127.0.0.1:5000).
      - Falls back to the environment variable E(REGISTRY_URL) of the controller.
      - Never put credentials in the URL; use O(username) and O(password).
    type: str
    required: true
  username:
    description:
      - User name for HTTP Basic authentication.
      - Falls back to the environment variable E(REGISTRY_USERNAME) of the controller.
    type: str
  password:
    description:
      - Password for HTTP Basic authentication. Never written to the trash, a result or a log.
      - Falls back to the environment variable E(REGISTRY_PASSWORD) of the controller.
    type: str
  validate_certs:
    description:
      - Verify the registry's TLS certificate. Turn off only for a test registry.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of the CA that signed the registry's certificate, on the controller.
      - Without it, the CA bundle of the Python C(requests) library is used.
    type: path
  timeout:
    description:
      - Seconds to wait for the registry to accept a connection and to begin each answer; an answer read
        whole (a manifest, a tag list, an error) must also arrive whole within this many seconds more.
      - A blob download, which can be large, is bounded per read instead.
    type: int
    default: 30
  parallel:
    description:
      - How many requests to the registry may be under way at once, over kept-alive connections.
      - A batch of many tags goes much faster with several; V(1) makes every step strictly one after another.
    type: int
    default: 8
requirements:
  - requests (Python library, on the controller)
'''

    # For the modules that work on the trash alone (they take registry_url only as a filter).
    TRASH_DIR = r'''
options:
  trash_dir:
    description:
      - Directory on the controller that holds the trash. Created with mode V(0700) when missing.
      - Falls back to the environment variable E(REGISTRY_TRASH_DIR) of the controller.
      - In AWX or AAP the controller is a throwaway container, so this must be a mounted persistent path.
    type: path
    default: ~/.ansible/registry_trash
'''

    # The modules that never contact a registry still accept its options, so that
    # module_defaults for group/oci_registry.trash.registry can set them once for every module.
    UNUSED_CONNECTION = r'''
options:
  username:
    description: Not used by this module; accepted so that C(module_defaults) of the action group can set it.
    type: str
  password:
    description: Not used by this module; accepted so that C(module_defaults) of the action group can set it.
    type: str
  validate_certs:
    description: Not used by this module; accepted so that C(module_defaults) of the action group can set it.
    type: bool
    default: true
  ca_path:
    description: Not used by this module; accepted so that C(module_defaults) of the action group can set it.
    type: path
  timeout:
    description: Not used by this module; accepted so that C(module_defaults) of the action group can set it.
    type: int
    default: 30
  parallel:
    description: Not used by this module; accepted so that C(module_defaults) of the action group can set it.
    type: int
    default: 8
'''

    # Used with ansible.builtin.action_common_attributes and its FLOW part, which describe
    # the other attributes.
    ATTRIBUTES = r'''
attributes:
  idempotent:
    description:
      - When run twice with the same options, the second run changes nothing and reports no change.
  action:
    support: full
    details: The work is done in the controller process by an action plugin of the same name.
  async:
    support: none
  bypass_host_loop:
    support: none
    details: The task runs once per host of the play; add C(run_once) to touch the registry once.
notes:
  - The module runs on the Ansible controller, whatever C(hosts:) names, and reads the
    environment variables of the controller. Use C(run_once) when a play targets several hosts.
  - The trash format is described in C(docs/trash-format.md) of the collection.
'''
