# -*- coding: utf-8 -*-
# Copyright (c) oci_registry.trash contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: no compatibility promise outside it.

"""What every action plugin of this collection shares: the part a module would get from AnsibleModule.

The argument spec is derived from the module's documentation (with its doc fragments),
so an option cannot be documented one way and validated another.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import time
import traceback

from ansible.errors import AnsibleActionFail
from ansible.module_utils.basic import env_fallback
from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase
from ansible.plugins.loader import fragment_loader
from ansible.utils.display import Display
from ansible.utils.plugin_docs import get_docstring

from ansible_collections.oci_registry.trash.plugins.module_utils._batch import DEFAULT_PARALLEL
from ansible_collections.oci_registry.trash.plugins.module_utils._errors import TrashError
from ansible_collections.oci_registry.trash.plugins.module_utils._registry_client import RegistryClient
from ansible_collections.oci_registry.trash.plugins.module_utils._trash_store import TrashStore

display = Display()

COLLECTION = 'oci_registry.trash'
MODULES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'modules')
SPEC_KEYS = ('type', 'required', 'default', 'choices', 'aliases', 'elements')

# The documentation format has no key for an environment fallback: an option gets one
# where its description says so, in these words.
ENV_FALLBACK_RE = re.compile(r'Falls back to the environment variable E\((\w+)\)')
# Nor for secrets: these are never shown, whatever module takes them.
SECRET_OPTIONS = frozenset(['password'])


@functools.lru_cache(maxsize=None)
def documented_options(module_name):
    doc = get_docstring(os.path.join(MODULES_DIR, module_name + '.py'), fragment_loader,
                        collection_name=COLLECTION, is_module=True)[0]
    return doc['options']


def argument_spec(module_name):
    spec = {}
    for name, option in documented_options(module_name).items():
        spec[name] = {key: option[key] for key in SPEC_KEYS if key in option}
        env = ENV_FALLBACK_RE.findall(' '.join(_as_list(option.get('description'))))
        if env:
            spec[name]['fallback'] = (env_fallback, env)
        if name in SECRET_OPTIONS:
            spec[name]['no_log'] = True
        if spec[name].get('type') == 'path' and isinstance(spec[name].get('default'), str):
            spec[name]['default'] = os.path.expanduser(spec[name]['default'])
    return spec


def _as_list(value):
    return value if isinstance(value, list) else [value or '']


class TrashAction(ActionBase):
    """Validate arguments, open the trash (and the registry), run execute(), shape the result."""

    MODULE_NAME = None
    # Modules that only read or empty the trash never open a connection to a registry.
    USES_REGISTRY = True
    PROGRESS_SECONDS = 2
    # Constraints between options, which the documentation states only in prose.
    RULES = {}

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def execute(self, params, client, store):
        raise NotImplementedError

    def progress(self, done, total):
        """A line at -v every PROGRESS_SECONDS or so of a long batch, and at its end."""
        now = time.monotonic()
        last = getattr(self, '_last_progress', None)
        if done == total or last is None or now - last >= self.PROGRESS_SECONDS:
            self._last_progress = now
            display.v('%s.%s: %d/%d done' % (COLLECTION, self.MODULE_NAME, done, total))

    def _client(self, params):
        if not self.USES_REGISTRY:
            return contextlib.nullcontext()
        return RegistryClient(params['registry_url'], username=params['username'], password=params['password'],
                              validate_certs=params['validate_certs'], ca_path=params['ca_path'],
                              timeout=params['timeout'], pool_size=params.get('parallel') or DEFAULT_PARALLEL)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        try:
            validation, params = self.validate_argument_spec(argument_spec(self.MODULE_NAME), **self.RULES)
        except AnsibleActionFail as exc:
            result.update(failed=True, msg=str(exc.message))
            return result
        try:
            store = TrashStore(params['trash_dir'])
            with self._client(params) as client:
                result.update(self.execute(params, client, store))
            for damaged in store.damaged:
                display.warning('skipped a damaged trash entry: %s' % damaged)
        except TrashError as exc:
            result.update(exc.details)
            result.update(failed=True, msg=exc.msg)
        except Exception as exc:  # a bug: still a clean failure, with the traceback for -vvv
            result.update(failed=True, msg='unexpected error in %s.%s: %s' % (COLLECTION, self.MODULE_NAME, exc),
                          exception=traceback.format_exc())
        # Masks a secret wherever it ended up, even inside a registry's error message.
        return remove_values(result, validation._no_log_values)
