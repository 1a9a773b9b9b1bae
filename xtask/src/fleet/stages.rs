//! The fleet's migration past conversion (issue 24): the modules `whmtoken_usage`,
//! `whmtoken_retire` and `whmtoken_restore` run ad hoc on one local host, then the
//! playbooks `migrate_staged`, `rollback` and `report` on several, each host its own fake
//! server (with a month of cPanel logs, access hashes accepted).
//!
//! What a server holds is read as `whmtoken audit --json` shows it (each account's access
//! hash state, and the setting) with `fake-server dump` (tokens and accounting lines).

use std::process::Command;

use super::{
    Fleet, Host, debug_binary, dumps, expect, expect_changed, expect_stopped_at_failing_host,
};
use crate::{output, workspace_root};

/// A server's state: the setting, each account's access hash state, and its dump.
type State = (bool, Vec<(String, String)>, String);

impl Fleet {
    /// A fake server of 3 resellers with cPanel logs, accepting access hashes.
    fn staged_host(&self, name: &'static str, seed: u32) -> Result<Host, String> {
        let tree = self.work.join(name);
        let config = output(
            Command::new(debug_binary("fake-server"))
                .args([
                    "generate",
                    "--resellers",
                    "3",
                    "--traffic",
                    "200",
                    "--backend",
                    "files",
                ])
                .arg("--seed")
                .arg(seed.to_string())
                .arg("--out")
                .arg(&tree),
        )?;
        let config = std::path::PathBuf::from(config.trim());
        output(
            Command::new(debug_binary("fake-server"))
                .arg("set")
                .arg("--config")
                .arg(&config)
                .arg("allow_deprecated_accesshash=1"),
        )?;
        Ok(Host {
            name,
            config,
            vars: serde_json::json!({}),
        })
    }

    /// `module` run ad hoc on `host` with `args` (and `--check`): whether it succeeded,
    /// and its result.
    fn module(
        &self,
        host: &Host,
        module: &str,
        args: serde_json::Value,
        check: bool,
    ) -> Result<(bool, serde_json::Value), String> {
        let inventory_file = self.write_inventory(&[host])?;
        let mut args = args;
        args["binary"] = serde_json::json!(debug_binary("whmtoken"));
        args["config"] = serde_json::json!(host.config);
        let mut command = Command::new(self.ansible.bin.join("ansible"));
        command
            .arg("-i")
            .arg(&inventory_file)
            .args(["-m", &format!("whmtoken.cpanel.{module}"), "-a"])
            .arg(args.to_string())
            .args(check.then_some("--check"))
            .arg(host.name);
        self.ansible_env(&mut command);
        eprintln!("xtask: {command:?}");
        let out = command
            .output()
            .map_err(|e| format!("cannot run ansible: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let result = stdout
            .split_once(" => ")
            .and_then(|(_, json)| serde_json::from_str(json).ok())
            .ok_or_else(|| format!("fleet: no result from {module}:\n{stdout}"))?;
        Ok((out.status.success(), result))
    }

    pub(super) fn the_modules(&self) -> Result<(), String> {
        let host = self.staged_host("modules", 31)?;
        let (ok, usage) = self.module(&host, "whmtoken_usage", serde_json::json!({}), false)?;
        let report = &usage["ansible_facts"]["whmtoken_usage"];
        expect(
            ok && usage["changed"] == false
                && report["accounts"].as_array().is_some_and(|a| a.len() == 4),
            "whmtoken_usage should return the usage of root and 3 resellers as facts",
            &usage.to_string(),
        )?;
        output(
            Command::new(debug_binary("convert_accesshash_to_token"))
                .args(["--all-resellers", "--config"])
                .arg(&host.config),
        )?;
        let converted = state(&host)?;
        let retire = serde_json::json!({ "all_resellers": true, "disable_accesshash_auth": false });

        // Retire: check mode says changed and changes nothing; then changed, then ok.
        let (ok, result) = self.module(&host, "whmtoken_retire", retire.clone(), true)?;
        let shown = result.to_string();
        expect(
            ok && result["changed"] == true && result["run_id"].is_null(),
            "retire --check: changed, no run",
            &shown,
        )?;
        expect(
            state(&host)? == converted,
            "retire --check changed the server",
            &shown,
        )?;
        let (ok, result) = self.module(&host, "whmtoken_retire", retire.clone(), false)?;
        let shown = result.to_string();
        let run = result["run_id"].as_str().unwrap_or_default().to_owned();
        expect(
            ok && result["changed"] == true && !run.is_empty(),
            "retire: changed, with a run id",
            &shown,
        )?;
        expect(
            result["summary"]["retired"] == 3,
            "retire: 3 retired",
            &shown,
        )?;
        let retired = state(&host)?;
        expect(
            accesshashes(&retired) == ["not_converted", "none", "none", "none"],
            "retire: the resellers' access hashes gone",
            &shown,
        )?;
        let (ok, result) = self.module(&host, "whmtoken_retire", retire, false)?;
        expect(
            ok && result["changed"] == false,
            "retire again: ok",
            &result.to_string(),
        )?;

        // A refusal fails the host with each account's error: root is not converted.
        let root = serde_json::json!({ "users": ["root"] });
        let (ok, result) = self.module(&host, "whmtoken_retire", root, false)?;
        let shown = result.to_string();
        expect(
            !ok && result["errors"][0]["user"] == "root",
            "retiring root (not converted) should fail the host, naming root",
            &shown,
        )?;
        expect(
            state(&host)? == retired,
            "a refused retire changed the server",
            &shown,
        )?;

        self.the_restore_module(&host, &run, &converted, &retired)
    }

    /// `whmtoken_restore` on `host`, whose run `run` retired what `converted` had (now
    /// `retired`).
    fn the_restore_module(
        &self,
        host: &Host,
        run: &str,
        converted: &State,
        retired: &State,
    ) -> Result<(), String> {
        // Restore: check mode changes nothing; then changed, then ok; an unknown run fails,
        // or is skipped when asked.
        let restore = serde_json::json!({ "run_id": run });
        let (ok, result) = self.module(host, "whmtoken_restore", restore.clone(), true)?;
        let shown = result.to_string();
        expect(
            ok && result["changed"] == true,
            "restore --check: changed",
            &shown,
        )?;
        expect(
            state(host)? == *retired,
            "restore --check changed the server",
            &shown,
        )?;
        let (ok, result) = self.module(host, "whmtoken_restore", restore.clone(), false)?;
        let shown = result.to_string();
        expect(
            ok && result["changed"] == true && result["summary"]["restored"] == 3,
            "restore: 3 put back",
            &shown,
        )?;
        let restored = state(host)?;
        expect(
            restored.0 == converted.0 && restored.1 == converted.1,
            "restore: the access hashes back",
            &shown,
        )?;
        let (ok, result) = self.module(host, "whmtoken_restore", restore, false)?;
        expect(
            ok && result["changed"] == false,
            "restore again: ok",
            &result.to_string(),
        )?;
        let unknown = serde_json::json!({ "run_id": "20200101T000000Z-abcd" });
        let (ok, result) = self.module(host, "whmtoken_restore", unknown.clone(), false)?;
        expect(
            !ok,
            "restoring a run the host does not have should fail",
            &result.to_string(),
        )?;
        let mut skip = unknown;
        skip["missing"] = serde_json::json!("skip");
        let (ok, result) = self.module(host, "whmtoken_restore", skip, false)?;
        expect(
            ok && result["changed"] == false,
            "missing: skip: ok",
            &result.to_string(),
        )?;
        eprintln!(
            "xtask: fleet: usage, retire and restore modules: check mode, changed then ok, refusals"
        );
        Ok(())
    }

    pub(super) fn the_staged_play(&self) -> Result<(), String> {
        let hosts: Vec<Host> = [("stage-a", 41), ("stage-b", 42), ("stage-c", 43)]
            .into_iter()
            .map(|(name, seed)| self.staged_host(name, seed))
            .collect::<Result<_, _>>()?;
        let hosts: Vec<&Host> = hosts.iter().collect();
        let serial = serde_json::json!({ "whmtoken_serial": [1, 2] });
        let before = states(&hosts)?;
        let (status, text, recap) = self.play_book(
            "whmtoken.cpanel.migrate_staged",
            &hosts,
            &["--check"],
            serial.clone(),
        )?;
        expect(status == 0, "the staged --check run failed", &text)?;
        expect_changed(
            &recap,
            &[("stage-a", 2), ("stage-b", 2), ("stage-c", 2)],
            &text,
        )?;
        expect(
            states(&hosts)? == before,
            "the staged --check run changed a server",
            &text,
        )?;

        let (status, text, recap) = self.play_book(
            "whmtoken.cpanel.migrate_staged",
            &hosts,
            &[],
            serial.clone(),
        )?;
        expect(status == 0, "the staged run failed", &text)?;
        expect_changed(
            &recap,
            &[("stage-a", 3), ("stage-b", 3), ("stage-c", 3)],
            &text,
        )?;
        let migrated = states(&hosts)?;
        for state in &migrated {
            expect(
                !state.0 && accesshashes(state) == ["none"; 4],
                "every access hash retired and the setting off",
                &text,
            )?;
        }
        let run = text
            .split("stage-a: run ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .ok_or_else(|| format!("fleet: the staged run printed no run id for stage-a:\n{text}"))?
            .to_owned();
        let (status, text, recap) =
            self.play_book("whmtoken.cpanel.migrate_staged", &hosts, &[], serial)?;
        expect(status == 0, "the staged rerun failed", &text)?;
        expect_changed(
            &recap,
            &[("stage-a", 0), ("stage-b", 0), ("stage-c", 0)],
            &text,
        )?;
        expect(
            states(&hosts)? == migrated,
            "the staged rerun changed a server",
            &text,
        )?;

        self.the_rollback(&hosts, &run, &migrated)?;
        self.the_report_play(&hosts)
    }

    /// The rollback of `run` (stage-a's) on the migrated `hosts`: only stage-a has it;
    /// then of each host's last run.
    fn the_rollback(&self, hosts: &[&Host], run: &str, migrated: &[State]) -> Result<(), String> {
        let named = serde_json::json!({ "whmtoken_run": run });
        let (status, text, recap) =
            self.play_book("whmtoken.cpanel.rollback", hosts, &[], named.clone())?;
        expect(status == 0, "the rollback failed", &text)?;
        expect_changed(
            &recap,
            &[("stage-a", 1), ("stage-b", 0), ("stage-c", 0)],
            &text,
        )?;
        let rolled = states(hosts)?;
        expect(
            rolled[0].0
                && accesshashes(&rolled[0]) == ["converted"; 4]
                && rolled[1..] == migrated[1..],
            "the rollback should put back stage-a's access hashes and setting, and only those",
            &text,
        )?;
        let (status, text, recap) =
            self.play_book("whmtoken.cpanel.rollback", hosts, &[], named)?;
        expect(status == 0, "the rollback's rerun failed", &text)?;
        expect_changed(
            &recap,
            &[("stage-a", 0), ("stage-b", 0), ("stage-c", 0)],
            &text,
        )?;
        let last = serde_json::json!({ "whmtoken_run": "last" });
        let (status, text, recap) = self.play_book("whmtoken.cpanel.rollback", hosts, &[], last)?;
        expect(status == 0, "the rollback of the last runs failed", &text)?;
        expect_changed(
            &recap,
            &[("stage-a", 0), ("stage-b", 1), ("stage-c", 1)],
            &text,
        )?;
        for state in states(hosts)? {
            expect(
                state.0 && accesshashes(&state) == ["converted"; 4],
                "every host rolled back",
                &text,
            )?;
        }
        eprintln!(
            "xtask: fleet: the staged play: --check changed nothing, the run migrated, the rerun was ok, the rollback put back what it retired"
        );
        Ok(())
    }

    pub(super) fn a_failing_host_stops_the_staged_play(&self) -> Result<(), String> {
        let first = self.staged_host("staged1", 51)?;
        let mut failing = self.staged_host("staged2-failing", 52)?;
        failing.vars = serde_json::json!({ "whmtoken_users": ["res00001", "ghost"] });
        let sibling = self.staged_host("staged2-ok", 53)?;
        let last = self.staged_host("staged3", 54)?;
        let hosts = [&first, &failing, &sibling, &last];
        let before = states(&hosts)?;
        let play_vars = serde_json::json!({ "whmtoken_serial": [1, 2] });
        let (status, text, recap) =
            self.play_book("whmtoken.cpanel.migrate_staged", &hosts, &[], play_vars)?;
        // The first batch went through every stage; in the failing batch, max_fail_percentage
        // stops every host after the task that failed (staged2-ok converted, and no more).
        expect_stopped_at_failing_host(
            (status, &text, &recap),
            "staged2-failing",
            &[("staged1", 3), ("staged2-ok", 1)],
            "staged3",
        )?;
        let after = states(&hosts)?;
        expect(
            after[3] == before[3],
            "the last batch's server changed",
            &text,
        )?;
        expect(
            accesshashes(&after[1])
                == [
                    "not_converted",
                    "converted",
                    "not_converted",
                    "not_converted",
                ]
                && accesshashes(&after[2])
                    == ["not_converted", "converted", "converted", "converted"],
            "the failing batch should have converted (res00001 on the failing host), and retired nothing",
            &text,
        )?;
        eprintln!("xtask: fleet: a failed host stopped the staged play after its batch");
        Ok(())
    }

    /// A host whose disable stage is refused (root left unconverted) fails, with the
    /// refusal, and the next batch never starts.
    pub(super) fn a_refused_disable_stops_the_staged_play(&self) -> Result<(), String> {
        let mut refused = self.staged_host("refused", 61)?;
        refused.vars = serde_json::json!({ "whmtoken_convert_root": false });
        let next = self.staged_host("next", 62)?;
        let hosts = [&refused, &next];
        let before = states(&hosts)?;
        let play_vars = serde_json::json!({ "whmtoken_serial": 1 });
        let (status, text, recap) =
            self.play_book("whmtoken.cpanel.migrate_staged", &hosts, &[], play_vars)?;
        expect(status != 0, "a refused disable should fail the run", &text)?;
        expect(
            recap.get("refused").is_some_and(|r| r.2 == 1),
            "the host whose disable was refused should have failed",
            &text,
        )?;
        expect(
            text.contains("access-hash authentication left on"),
            "the refusal should be reported",
            &text,
        )?;
        expect(
            !recap.contains_key("next"),
            "the next batch should not have started",
            &text,
        )?;
        let after = states(&hosts)?;
        expect(
            after[0].0
                && accesshashes(&after[0])
                    == ["not_converted", "converted", "converted", "converted"]
                && after[1] == before[1],
            "the refused host should have its resellers converted and none retired (a refused \
             switch retires nothing), the setting on, the next host untouched",
            &text,
        )?;
        eprintln!("xtask: fleet: a refused disable failed its host and stopped the staged play");
        Ok(())
    }

    /// The report play on `hosts`: the page and the CSV on the controller, no host changed.
    fn the_report_play(&self, hosts: &[&Host]) -> Result<(), String> {
        let folder = self.work.join("report");
        let before = states(hosts)?;
        let play_vars = serde_json::json!({
            "whmtoken_report_dir": folder,
            "whmtoken_report_binary": debug_binary("whmtoken"),
        });
        let (status, text, recap) =
            self.play_book("whmtoken.cpanel.report", hosts, &[], play_vars)?;
        expect(status == 0, "the report play failed", &text)?;
        let unchanged: Vec<(&str, u32)> = hosts.iter().map(|h| (h.name, 0)).collect();
        expect_changed(&recap, &unchanged, &text)?;
        expect(
            states(hosts)? == before,
            "the report play changed a server",
            &text,
        )?;
        let page = std::fs::read_to_string(folder.join("fleet.html"))
            .map_err(|e| format!("fleet: no page: {e}\n{text}"))?;
        let csv = std::fs::read_to_string(folder.join("findings.csv"))
            .map_err(|e| format!("fleet: no CSV: {e}\n{text}"))?;
        for host in hosts {
            expect(
                page.contains(&format!("\"host\":\"{}\"", host.name)),
                &format!("the page should name {}", host.name),
                &text,
            )?;
            expect(
                csv.contains(&format!("\r\n{},", host.name)),
                &format!("the CSV should name {}", host.name),
                &text,
            )?;
        }
        eprintln!("xtask: fleet: the report play wrote the page and the CSV, and changed no host");
        self.the_report_play_from_where_it_is_run(hosts)
    }

    /// The report play run from a folder of its own, without `whmtoken_report_dir` and with
    /// a relative one: the report lands in that folder (`$PWD`), never in the collection;
    /// a host whose audit fails (its config missing) is in the page and the CSV as not
    /// audited, and fails the play.
    fn the_report_play_from_where_it_is_run(&self, hosts: &[&Host]) -> Result<(), String> {
        let here = self.work.join("report-here");
        std::fs::create_dir_all(&here).map_err(|e| format!("{}: {e}", here.display()))?;
        let unaudited = Host {
            name: "unaudited",
            config: self.work.join("no-such-config.toml"),
            vars: serde_json::json!({}),
        };
        let mut all: Vec<&Host> = hosts.to_vec();
        all.push(&unaudited);
        let collection =
            workspace_root().join("contrib/ansible/ansible_collections/whmtoken/cpanel/playbooks");
        for (given, folder) in [
            (serde_json::Value::Null, here.join("whmtoken-report")),
            (serde_json::json!("relative/out"), here.join("relative/out")),
        ] {
            let play_vars = serde_json::json!({
                "whmtoken_report_dir": given,
                "whmtoken_report_binary": debug_binary("whmtoken"),
            });
            let (status, text, recap) =
                self.play_book_from(&here, "whmtoken.cpanel.report", &all, &[], play_vars)?;
            expect(
                status != 0 && recap.get("unaudited").is_some_and(|r| r.2 == 1),
                "the host that could not be audited should fail the report play",
                &text,
            )?;
            expect(
                !collection.join("whmtoken-report").exists()
                    && !collection.join("relative").exists(),
                "the report should never land inside the collection",
                &text,
            )?;
            let page = std::fs::read_to_string(folder.join("fleet.html")).map_err(|e| {
                format!(
                    "fleet: no page in {} (given {given}): {e}\n{text}",
                    folder.display()
                )
            })?;
            let csv = std::fs::read_to_string(folder.join("findings.csv"))
                .map_err(|e| format!("fleet: no CSV in {}: {e}\n{text}", folder.display()))?;
            expect(
                page.contains("\"missing\":[\"unaudited\"]"),
                "the page should name the host that could not be audited",
                &text,
            )?;
            expect(
                csv.contains("\r\nunaudited,,critical,not_audited,"),
                "the CSV should have the host that could not be audited",
                &text,
            )?;
            for host in hosts {
                expect(
                    csv.contains(&format!("\r\n{},", host.name)),
                    &format!("the CSV should name {}", host.name),
                    &text,
                )?;
            }
        }
        eprintln!(
            "xtask: fleet: the report play run from a folder wrote there (default and relative whmtoken_report_dir), and named the host it could not audit"
        );
        Ok(())
    }
}

/// Each account's access hash state, in the audit's order.
fn accesshashes(state: &State) -> Vec<&str> {
    state.1.iter().map(|(_, s)| s.as_str()).collect()
}

/// The server's state, as the audit and `fake-server dump` show it.
fn state(host: &Host) -> Result<State, String> {
    let audit = output(
        Command::new(debug_binary("whmtoken"))
            .arg("--config")
            .arg(&host.config)
            .args([
                "audit",
                "--json",
                "--no-usage",
                "--fail-on",
                "never",
                "--host",
                host.name,
            ]),
    )?;
    let audit: serde_json::Value =
        serde_json::from_str(&audit).map_err(|e| format!("audit of {}: {e}", host.name))?;
    let accounts = audit["accounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["user"].as_str().unwrap_or("").to_owned(),
                a["accesshash"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let dump = dumps(&[host])?.remove(0);
    Ok((
        audit["server"]["allow_deprecated_accesshash"] == true,
        accounts,
        dump,
    ))
}

fn states(hosts: &[&Host]) -> Result<Vec<State>, String> {
    hosts.iter().map(|h| state(h)).collect()
}
