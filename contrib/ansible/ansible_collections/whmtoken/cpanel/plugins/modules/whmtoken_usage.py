#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: the whmtoken authors
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Ansible module: who still uses each access hash and token, from cPanel's logs, as facts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: whmtoken_usage
short_description: Report who still uses each WHM access hash and API token
version_added: "0.2.0"
description:
  - Runs C(whmtoken usage --json) on the managed host and returns its report as the fact
    C(whmtoken_usage) (each account's access hash and tokens, their uses, clients and last
    use, from cPanel's own logs).
  - Reads only; never changes anything, so it runs in check mode too.
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
      - The accounts to report. Without users, root, every reseller, and every account with
        a token file.
    type: list
    elements: str
    default: []
  since:
    description:
      - The window's start, a span back from now (C(90d), C(12h), C(2w)) or epoch seconds.
    type: str
    default: 90d
  logs:
    description: The folder of cPanel's logs; without it, the server's own.
    type: path
  config:
    description: The whmtoken config file; without it, whmtoken's own default applies.
    type: path
attributes:
  check_mode:
    support: full
    description: The report reads only, so it runs in check mode too.
  diff_mode:
    support: none
  facts:
    support: full
"""

EXAMPLES = r"""
- name: Read who still uses access hashes
  whmtoken.cpanel.whmtoken_usage:
    since: 30d
  become: true

- name: Show the accounts whose access hash was used in the window
  ansible.builtin.debug:
    msg: >-
      {{ ansible_facts.whmtoken_usage.accounts
         | selectattr('accesshash.ok', 'gt', 0)
         | map(attribute='user') | list }}
"""

RETURN = r"""
ansible_facts:
  description: Facts set by the module.
  returned: success
  type: dict
  contains:
    whmtoken_usage:
      description: The C(whmtoken usage --json) report.
      type: dict
      returned: success
rc:
  description: The command's exit status.
  returned: always
  type: int
cmd:
  description: The command that was run.
  returned: always
  type: list
  elements: str
"""

import json

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec=dict(
            binary=dict(type="path", default="/usr/sbin/whmtoken"),
            users=dict(type="list", elements="str", default=[]),
            since=dict(type="str", default="90d"),
            logs=dict(type="path"),
            config=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    cmd = [params["binary"]]
    if params["config"]:
        cmd.extend(["--config", params["config"]])
    cmd.extend(["usage", "--json", "--since", params["since"]])
    if params["logs"]:
        cmd.extend(["--logs", params["logs"]])
    cmd.append("--")
    cmd.extend(params["users"])
    rc, stdout, stderr = module.run_command(cmd)
    if rc != 0:
        module.fail_json(
            msg="%s exited %d: %s" % (cmd[0], rc, stderr.strip() or "(no error message)"),
            rc=rc,
            cmd=cmd,
        )
    try:
        report = json.loads(stdout)
    except ValueError:
        module.fail_json(msg="%s printed no JSON report" % cmd[0], rc=rc, cmd=cmd)
    module.exit_json(changed=False, rc=rc, cmd=cmd, ansible_facts=dict(whmtoken_usage=report))


if __name__ == "__main__":
    main()
