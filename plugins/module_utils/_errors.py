# -*- coding: utf-8 -*-
# Copyright (c) oci_registry.trash contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: no compatibility promise outside it.

from __future__ import annotations


class TrashError(Exception):
    """Every failure the core reports to a user: the message says what and why.

    The action plugins turn this, and only this, into a task failure; anything else
    is a bug and still becomes a clean failure, with the traceback at -vvv.
    """

    # True when the failed step may still have taken effect (see RegistryError).
    outcome_unknown = False

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details


class RegistryError(TrashError):
    """A registry request that failed, with what a person needs to act on it."""

    def __init__(self, operation, url, status=None, code=None, message=None, hint=None, outcome_unknown=False):
        self.operation = operation
        # An attempt may have reached the registry and acted there although the request failed
        # (its answer was lost or came too late): a DELETE that failed so can still land.
        self.outcome_unknown = outcome_unknown
        self.url = url
        self.status = status
        self.code = code
        self.message = message
        msg = '%s %s failed' % (operation, url)
        if status is not None:
            msg += ': HTTP %s' % status
        if code or message:
            msg += (' ' if status is not None else ': ') + ': '.join(p for p in (code, message) if p)
        if hint:
            msg += '. ' + hint
        super().__init__(msg, operation=operation, url=url, status=status, code=code, registry_message=message)
