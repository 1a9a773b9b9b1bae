#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: the whmtoken authors
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Ansible module: put back what a whmtoken retire run changed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: whmtoken_restore
short_description: Put back exactly what a whmtoken retire run changed
version_added: "0.2.0"
description:
  - Runs C(whmtoken restore RUN_ID --json) on the managed host. The access hashes the run
    retired, and the setting it changed, are put back.
  - O(run_id=last) names the host's latest run not restored yet (from C(whmtoken runs
    --json)); a host without such a run, or without the named run, fails unless
    O(missing=skip).
  - Check mode runs it with C(--dry-run), which writes nothing; C(changed) then says what a
    real run would put back.
  - C(changed) is true when something was put back.
  - The host fails when something could not be put back (exit status 65), with each
    change's error in C(errors).
  - Needs only Python's standard library on the managed host.
author:
  - the whmtoken authors
options:
  run_id:
    description: The run to undo, as C(whmtoken runs) lists it, or C(last).
    type: str
    required: true
  missing:
    description: What a host without that run does, C(fail) or C(skip) (ok, nothing changed).
    type: str
    choices: [fail, skip]
    default: fail
  force:
    description:
      - Restore over an access hash that exists again (kept in the run's backup), or from
        a backup that no longer matches the journal.
    type: bool
    default: false
  binary:
    description: The whmtoken binary to run.
    type: path
    default: /usr/sbin/whmtoken
  config:
    description: The whmtoken config file; without it, whmtoken's own default applies.
    type: path
attributes:
  check_mode:
    support: full
    description: Runs C(whmtoken restore) with C(--dry-run).
  diff_mode:
    support: none
notes:
  - Runs as root on a real server (C(become=true)).
"""

EXAMPLES = r"""
- name: Undo a retire run on the hosts that have it
  whmtoken.cpanel.whmtoken_restore:
    run_id: 20261204T131734Z-tcvd
    missing: skip
  become: true

- name: Undo each host's latest retire run
  whmtoken.cpanel.whmtoken_restore:
    run_id: last
  become: true
"""

RETURN = r"""
run_id:
  description: The run restored (the host's own id when O(run_id=last)); null when the host has no such run.
  returned: always
  type: str
summary:
  description: The count of each status (C(restored), C(already_restored), C(failed)), and of the changes not attempted (C(not_attempted), not counted in C(failed)).
  returned: when the command printed a report
  type: dict
errors:
  description: Each change that could not be put back, and its error.
  returned: when the command printed a report
  type: list
  elements: dict
report:
  description: The C(whmtoken restore --json) report (its version 1).
  returned: when the command printed a report
  type: dict
rc:
  description: The restore's exit status (0 when it did not run).
  returned: always
  type: int
stderr:
  description: The restore's stderr (its error lines).
  returned: always
  type: str
cmd:
  description: The command that was run last.
  returned: always
  type: list
  elements: str
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.whmtoken.cpanel.plugins.module_utils.whmtoken import json_report

# whmtoken's exit statuses: 0 done, 65 something could not be put back.
EXIT_OK = 0
EXIT_FAILED = 65


def whmtoken(params, *args):
    """whmtoken's command line with the config and ARGS."""
    cmd = [params["binary"]]
    if params["config"]:
        cmd.extend(["--config", params["config"]])
    cmd.extend(args)
    return cmd


def find_run(module, params):
    """The id of the run to restore, from `whmtoken runs --json`, or None."""
    cmd = whmtoken(params, "runs", "--json")
    rc, stdout, stderr = module.run_command(cmd)
    if rc != EXIT_OK:
        module.fail_json(msg="%s exited %d: %s" % (cmd[0], rc, stderr.strip()), rc=rc, cmd=cmd)
    try:
        runs = json.loads(stdout).get("runs", [])
    except ValueError:
        module.fail_json(msg="%s printed no JSON list of runs" % cmd[0], rc=rc, cmd=cmd)
    if params["run_id"] == "last":
        pending = [r for r in runs if r.get("restored_at") is None]
        return max(pending, key=lambda r: r.get("started", 0))["id"] if pending else None
    return params["run_id"] if any(r.get("id") == params["run_id"] for r in runs) else None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            run_id=dict(type="str", required=True),
            missing=dict(type="str", choices=["fail", "skip"], default="fail"),
            force=dict(type="bool", default=False),
            binary=dict(type="path", default="/usr/sbin/whmtoken"),
            config=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    run_id = find_run(module, params)
    if run_id is None:
        result = dict(changed=False, run_id=None, rc=0, stderr="", cmd=[])
        what = "no retire run left to restore" if params["run_id"] == "last" else "no run %s" % params["run_id"]
        if params["missing"] == "skip":
            module.exit_json(msg="%s on this host" % what, **result)
        module.fail_json(msg="%s on this host" % what, **result)
    cmd = whmtoken(params, "restore", "--json")
    if module.check_mode:
        cmd.append("--dry-run")
    if params["force"]:
        cmd.append("--force")
    cmd.extend(["--", run_id])
    rc, stdout, stderr = module.run_command(cmd)
    result = dict(changed=False, run_id=run_id, rc=rc, stderr=stderr, cmd=cmd)
    report = json_report(module, cmd, rc, stdout, stderr, **result)
    summary = report.get("summary", {})
    errors = [
        dict(change=r.get("change"), name=r.get("user") or r.get("name"), error=r.get("error"))
        for r in report.get("results", [])
        if r.get("error") is not None
    ]
    result.update(report=report, summary=summary, errors=errors, changed=summary.get("restored", 0) > 0)
    if rc == EXIT_FAILED:
        module.fail_json(
            msg="not put back: %s" % "; ".join("%s: %s" % (e["name"], e["error"]) for e in errors),
            **result
        )
    if rc != EXIT_OK:
        module.fail_json(msg="%s exited %d: %s" % (cmd[0], rc, stderr.strip()), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
