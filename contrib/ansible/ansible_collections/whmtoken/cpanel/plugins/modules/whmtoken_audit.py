#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: the whmtoken authors
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Ansible module: whmtoken's audit of access hashes and API tokens, as facts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: whmtoken_audit
short_description: Audit a cPanel server's access hashes and API tokens
version_added: "0.1.0"
description:
  - Runs C(whmtoken audit --json) on the managed host and returns its report as the fact
    C(whmtoken_audit).
  - Reads only; never changes anything.
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
      - The accounts to audit. Without users, root, every reseller, and every account
        with a token file.
    type: list
    elements: str
    default: []
  fail_on:
    description: Fail the host when a finding is at least this severe.
    type: str
    choices: [critical, warning, info, never]
    default: never
  config:
    description: The whmtoken config file; without it, whmtoken's own default applies.
    type: path
  host:
    description:
      - The host name the report carries (C(whmtoken report) tells servers apart by it);
        without it, the machine's host name.
    type: str
    version_added: "0.2.0"
  usage:
    description: Read cPanel's logs for each credential's last use (false is C(--no-usage)).
    type: bool
    default: true
    version_added: "0.2.0"
attributes:
  check_mode:
    support: full
    description: The audit reads only, so it runs in check mode too.
  diff_mode:
    support: none
  facts:
    support: full
"""

EXAMPLES = r"""
- name: Audit the server
  whmtoken.cpanel.whmtoken_audit:
  become: true

- name: Show the accounts whose access hash is not converted yet
  ansible.builtin.debug:
    msg: >-
      {{ ansible_facts.whmtoken_audit.accounts
         | selectattr('accesshash', 'equalto', 'not_converted')
         | map(attribute='user') | list }}
"""

RETURN = r"""
ansible_facts:
  description: Facts set by the module.
  returned: when the audit printed a report
  type: dict
  contains:
    whmtoken_audit:
      description: The C(whmtoken audit --json) report.
      type: dict
      returned: when the audit printed a report
rc:
  description: The audit's exit status (1 when a finding reached O(fail_on)).
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.whmtoken.cpanel.plugins.module_utils.whmtoken import json_report

# `whmtoken audit` exits 1 when a finding is at least as severe as --fail-on.
EXIT_FINDINGS = 1


def main():
    module = AnsibleModule(
        argument_spec=dict(
            binary=dict(type="path", default="/usr/sbin/whmtoken"),
            users=dict(type="list", elements="str", default=[]),
            fail_on=dict(
                type="str",
                choices=["critical", "warning", "info", "never"],
                default="never",
            ),
            config=dict(type="path"),
            host=dict(type="str"),
            usage=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    cmd = [params["binary"]]
    if params["config"]:
        cmd.extend(["--config", params["config"]])
    cmd.extend(["audit", "--json", "--fail-on", params["fail_on"]])
    if params["host"]:
        cmd.extend(["--host", params["host"]])
    if not params["usage"]:
        cmd.append("--no-usage")
    cmd.append("--")
    cmd.extend(params["users"])
    rc, stdout, stderr = module.run_command(cmd)
    report = json_report(module, cmd, rc, stdout, stderr, rc=rc, cmd=cmd)
    facts = dict(whmtoken_audit=report)
    if rc == EXIT_FINDINGS:
        module.fail_json(
            msg="findings at or above %s" % params["fail_on"],
            rc=rc,
            cmd=cmd,
            ansible_facts=facts,
        )
    if rc != 0:
        module.fail_json(msg="%s exited %d: %s" % (cmd[0], rc, stderr.strip()), rc=rc, cmd=cmd)
    module.exit_json(changed=False, rc=rc, cmd=cmd, ansible_facts=facts)


if __name__ == "__main__":
    main()
