# -*- coding: utf-8 -*-
# Copyright: the whmtoken authors
# SPDX-License-Identifier: MIT OR Apache-2.0
"""What the collection's modules share: reading the JSON report a whmtoken command printed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json


def json_report(module, command, status, out, err, **result):
    """The JSON report `command` printed (`out`; it exited `status`, saying `err` on stderr);
    without one, the module fails with `result`, which may hold the same run's fields."""
    try:
        report = json.loads(out) if out.strip() else None
    except ValueError:
        report = None
    if report is None:
        module.fail_json(
            msg="%s exited %d without a JSON report: %s"
            % (command[0], status, err.strip() or "(no error message)"),
            **result
        )
    return report
