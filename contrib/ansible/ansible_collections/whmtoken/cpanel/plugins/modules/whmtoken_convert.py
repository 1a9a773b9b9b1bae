#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: the whmtoken authors
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Ansible module: convert WHM access hashes into API tokens with whmtoken's converter."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: whmtoken_convert
short_description: Convert WHM access hashes into API tokens
version_added: "0.1.0"
description:
  - Runs whmtoken's C(convert_accesshash_to_token) with C(--json) on the managed host and
    returns its whole report.
  - Check mode runs it with C(--dry-run) (every read and check of a real run, nothing
    written), so C(changed) then says what a real run would change.
  - C(changed) is true when any user was C(converted) or C(replaced).
  - The host fails when any user failed (the converter's exit status 65); the per-user
    errors are in C(errors), and every other user was still processed.
  - Needs only Python's standard library on the managed host.
author:
  - the whmtoken authors
options:
  binary:
    description: The converter to run.
    type: path
    default: /usr/sbin/convert_accesshash_to_token
  users:
    description:
      - The users to convert, in order. Without users and without O(all_resellers),
        root is converted.
    type: list
    elements: str
    default: []
  all_resellers:
    description: Convert every reseller (root is not a reseller); not with O(users).
    type: bool
    default: false
  replace:
    description: Replace a token already converted from the same access hash.
    type: bool
    default: false
  acls:
    description: New tokens get exactly these ACLs (WHM's built-in ACL names).
    type: list
    elements: str
    default: []
  expires:
    description: New tokens expire, in epoch seconds or a span such as C(90d).
    type: str
  allow_ips:
    description: New tokens accept only these addresses or CIDR ranges.
    type: list
    elements: str
    default: []
  config:
    description:
      - The whmtoken config file. Without it, the converter's own default applies
        (C(WHMTOKEN_CONFIG), else C(/etc/whmtoken.toml), else cPanel's files on C(/)).
    type: path
attributes:
  check_mode:
    support: full
    description: Runs the converter with C(--dry-run).
  diff_mode:
    support: none
notes:
  - The converter must run as root on a real server (C(become=true)).
"""

EXAMPLES = r"""
- name: Convert every reseller's access hash
  whmtoken.cpanel.whmtoken_convert:
    all_resellers: true
  become: true

- name: Convert root and a DNS-cluster reseller, with restricted new tokens
  whmtoken.cpanel.whmtoken_convert:
    users: [root, dnsadmin]
    acls: [clustering]
    expires: 365d
    allow_ips: [192.0.2.10]
  become: true
"""

RETURN = r"""
report:
  description: The converter's C(--json) report (its version 1).
  returned: when the converter printed one
  type: dict
  sample:
    version: 1
    dry_run: false
    backend: files
    results:
      - user: root
        status: converted
        token_name: accesshash-1795824115
        token_hash_prefix: 344331a28e4a
    summary: {converted: 1, replaced: 0, already_converted: 0, no_accesshash: 0, failed: 0, interrupted: 0}
summary:
  description: The count of each status.
  returned: when the converter printed a report
  type: dict
errors:
  description: Each failed or interrupted user and its error.
  returned: when the converter printed a report
  type: list
  elements: dict
  sample: [{user: ghost, error: User ghost is not a reseller.}]
rc:
  description: The converter's exit status.
  returned: always
  type: int
stderr:
  description: The converter's stderr (its error and warning lines).
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

# The converter's exit statuses (its README): 0 done, 65 at least one user failed.
EXIT_OK = 0
EXIT_USER_FAILED = 65


def build_command(params, check_mode):
    """The converter's command line for the module's options."""
    cmd = [params["binary"], "--json"]
    if check_mode:
        cmd.append("--dry-run")
    if params["config"]:
        cmd.extend(["--config", params["config"]])
    if params["all_resellers"]:
        cmd.append("--all-resellers")
    if params["replace"]:
        cmd.append("--replace")
    for acl in params["acls"]:
        cmd.extend(["--acl", acl])
    if params["expires"]:
        cmd.extend(["--expires", params["expires"]])
    for address in params["allow_ips"]:
        cmd.extend(["--allow-ip", address])
    # `--` ends the options: a user name is never read as one.
    cmd.append("--")
    cmd.extend(params["users"])
    return cmd


def main():
    module = AnsibleModule(
        argument_spec=dict(
            binary=dict(type="path", default="/usr/sbin/convert_accesshash_to_token"),
            users=dict(type="list", elements="str", default=[]),
            all_resellers=dict(type="bool", default=False),
            replace=dict(type="bool", default=False),
            acls=dict(type="list", elements="str", default=[]),
            expires=dict(type="str"),
            allow_ips=dict(type="list", elements="str", default=[]),
            config=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    if module.params["users"] and module.params["all_resellers"]:
        module.fail_json(msg="users and all_resellers exclude each other")
    cmd = build_command(module.params, module.check_mode)
    rc, stdout, stderr = module.run_command(cmd)
    result = dict(changed=False, rc=rc, stderr=stderr, cmd=cmd)
    report = json_report(module, cmd, rc, stdout, stderr, **result)
    results = report.get("results", [])
    summary = report.get("summary", {})
    errors = [
        dict(user=r.get("user"), status=r.get("status"), error=r.get("error"))
        for r in results
        if r.get("status") in ("failed", "interrupted")
    ]
    result.update(
        report=report,
        summary=summary,
        errors=errors,
        changed=summary.get("converted", 0) + summary.get("replaced", 0) > 0,
    )
    if rc == EXIT_USER_FAILED:
        module.fail_json(
            msg="%d user(s) failed: %s"
            % (len(errors), "; ".join("%s: %s" % (e["user"], e["error"]) for e in errors)),
            **result
        )
    if rc != EXIT_OK:
        module.fail_json(msg="%s exited %d: %s" % (cmd[0], rc, stderr.strip()), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
