#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: the whmtoken authors
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Ansible module: retire converted WHM access hashes, and switch access hashes off."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: whmtoken_retire
short_description: Retire converted WHM access hashes and turn access-hash authentication off
version_added: "0.2.0"
description:
  - Runs C(whmtoken retire --json) on the managed host. Each converted access hash is moved
    into a root-only backup recorded in a run's journal (C(whmtoken restore) puts it
    back), and with O(disable_accesshash_auth) the setting C(allow_deprecated_accesshash) is
    turned off in the same run.
  - Check mode runs it with C(--dry-run), which writes nothing; C(changed) then says what a
    real run would change.
  - C(changed) is true when an access hash was retired or the setting was turned off.
  - The host fails when an account or the setting was refused or failed (exit status 65),
    with each account's error in C(errors); the other accounts were still processed.
  - Needs only Python's standard library on the managed host.
author:
  - the whmtoken authors
options:
  binary:
    description: The whmtoken binary to run.
    type: path
    default: /usr/sbin/whmtoken
  users:
    description:
      - The accounts whose access hash to retire. Without users and without
        O(all_resellers), root.
    type: list
    elements: str
    default: []
  all_resellers:
    description: Retire the access hash of every reseller; not with O(users).
    type: bool
    default: false
  disable_accesshash_auth:
    description:
      - Then turn access-hash authentication off (C(allow_deprecated_accesshash=0)), unless
        an access hash on the server is not converted.
    type: bool
    default: false
  force:
    description: Turn access-hash authentication off even while access hashes are not converted.
    type: bool
    default: false
  config:
    description: The whmtoken config file; without it, whmtoken's own default applies.
    type: path
attributes:
  check_mode:
    support: full
    description: Runs C(whmtoken retire) with C(--dry-run).
  diff_mode:
    support: none
notes:
  - Runs as root on a real server (C(become=true)).
"""

EXAMPLES = r"""
- name: Retire every reseller's converted access hash and switch access hashes off
  whmtoken.cpanel.whmtoken_retire:
    all_resellers: true
    disable_accesshash_auth: true
  become: true
  register: retired

- name: Keep the run id, for whmtoken.cpanel.whmtoken_restore
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }}: run {{ retired.run_id }}"
"""

RETURN = r"""
run_id:
  description: The run's id (C(whmtoken runs) lists it, C(whmtoken restore) takes it); null in check mode and when nothing was changed.
  returned: when the command printed a report
  type: str
  sample: 20261204T131734Z-tcvd
accesshash_auth:
  description: What became of the setting, C(unchanged), C(disabled) or C(refused).
  returned: when the command printed a report
  type: str
summary:
  description: The count of each status (C(retired), C(already_retired), C(no_accesshash), C(not_converted), C(failed)), and of the accounts not attempted (C(not_attempted), not counted in C(failed)).
  returned: when the command printed a report
  type: dict
errors:
  description: Each refused or failed account and its error.
  returned: when the command printed a report
  type: list
  elements: dict
  sample: [{user: res1, status: not_converted, error: "access hash not converted; --force ..."}]
report:
  description: The C(whmtoken retire --json) report (its version 1).
  returned: when the command printed a report
  type: dict
rc:
  description: The command's exit status.
  returned: always
  type: int
stderr:
  description: The command's stderr (its error and warning lines).
  returned: always
  type: str
cmd:
  description: The command that was run.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.whmtoken.cpanel.plugins.module_utils.whmtoken import json_report

# whmtoken's exit statuses: 0 done, 65 an account or the setting was refused or failed.
EXIT_OK = 0
EXIT_REFUSED = 65


def build_command(params, check_mode):
    """whmtoken retire's command line for the module's options."""
    cmd = [params["binary"]]
    if params["config"]:
        cmd.extend(["--config", params["config"]])
    cmd.extend(["retire", "--json"])
    if check_mode:
        cmd.append("--dry-run")
    if params["all_resellers"]:
        cmd.append("--all-resellers")
    if params["disable_accesshash_auth"]:
        cmd.append("--disable-accesshash-auth")
    if params["force"]:
        cmd.append("--force")
    cmd.append("--")
    cmd.extend(params["users"])
    return cmd


def main():
    module = AnsibleModule(
        argument_spec=dict(
            binary=dict(type="path", default="/usr/sbin/whmtoken"),
            users=dict(type="list", elements="str", default=[]),
            all_resellers=dict(type="bool", default=False),
            disable_accesshash_auth=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
            config=dict(type="path"),
        ),
        mutually_exclusive=[("users", "all_resellers")],
        supports_check_mode=True,
    )
    cmd = build_command(module.params, module.check_mode)
    rc, stdout, stderr = module.run_command(cmd)
    result = dict(changed=False, rc=rc, stderr=stderr, cmd=cmd)
    report = json_report(module, cmd, rc, stdout, stderr, **result)
    summary = report.get("summary", {})
    errors = [
        dict(user=r.get("user"), status=r.get("status"), error=r.get("error"))
        for r in report.get("results", [])
        if r.get("error") is not None
    ]
    result.update(
        report=report,
        run_id=report.get("run_id"),
        accesshash_auth=report.get("accesshash_auth"),
        summary=summary,
        errors=errors,
        changed=summary.get("retired", 0) > 0 or report.get("accesshash_auth") == "disabled",
    )
    if rc == EXIT_REFUSED:
        problems = ["%s: %s" % (e["user"], e["error"]) for e in errors]
        if report.get("accesshash_auth") == "refused":
            problems.append("access-hash authentication left on: %s" % stderr.strip())
        module.fail_json(msg="refused or failed: %s" % "; ".join(problems), **result)
    if rc != EXIT_OK:
        module.fail_json(msg="%s exited %d: %s" % (cmd[0], rc, stderr.strip()), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
