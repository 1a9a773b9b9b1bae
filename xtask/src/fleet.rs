//! `cargo xtask fleet`: the Ansible collection `whmtoken.cpanel` (`contrib/ansible/`) run
//! for real, with ansible-core from PyPI (pinned, into a virtualenv in
//! `target/tools/ansible`), against inventory hosts on this machine
//! (`ansible_connection: local`), each converting its own fake server (`fake-server
//! generate --backend files`, in `target/fleet/`) through `whmtoken_config`.
//!
//! The example playbook `whmtoken.cpanel.migrate` itself is run, with the install step off
//! and the binaries of the debug build:
//!
//! 1. `--check` on hosts with work and one without: `changed` on those with work, and no
//!    server changed (`fake-server dump` before and after).
//! 2. A real run: `changed` on the hosts with work, their servers converted; a rerun:
//!    nothing changed.
//! 3. Batches `serial: [1, 2]`, `max_fail_percentage: 0`, where a host of the second batch
//!    has a user that fails: the first batch converted, the failing host failed (its error
//!    in the output) while the other host of its batch finished, and the third batch never
//!    started (its server untouched).
//!
//! Then the modules and playbooks past conversion (`stages`: usage, retire, restore,
//! `migrate_staged`, `rollback`, `report`), then `ansible-doc` of each module (each
//! option of its `argument_spec` and each return value described) and `ansible-lint
//! --strict` (pinned, in the same virtualenv) on the collection. `the_role_installs_the_package` (run by `cargo xtask ci` as root, in
//! the throwaway root after the DEB's install check, as it needs the DEB) runs the role
//! with its install step.

mod stages;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, output, run, target_dir, workspace_root};

/// The collection's modules, each checked with `ansible-doc`.
const MODULES: [&str; 5] = [
    "whmtoken_convert",
    "whmtoken_audit",
    "whmtoken_usage",
    "whmtoken_retire",
    "whmtoken_restore",
];

/// ansible-core and ansible-lint, pinned.
const PYPI_TOOLS: [&str; 2] = ["ansible-core==2.19.14", "ansible-lint==26.10.1"];

pub(crate) fn fleet() -> Result<(), String> {
    cargo(&[
        "build",
        "-p",
        "whmtoken-cli",
        "-p",
        "whmtoken-fake-server",
        "--locked",
    ])?;
    let ansible = Ansible::install()?;
    let work = target_dir().join("fleet");
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    }
    std::fs::create_dir_all(work.join("tmp")).map_err(|e| format!("{}: {e}", work.display()))?;
    let fleet = Fleet { ansible, work };
    fleet.check_run_rerun()?;
    fleet.a_failed_batch_stops_the_play()?;
    fleet.no_facts_without_the_install()?;
    fleet.the_modules()?;
    fleet.the_staged_play()?;
    fleet.a_failing_host_stops_the_staged_play()?;
    fleet.a_refused_disable_stops_the_staged_play()?;
    fleet.lint()
}

/// The virtualenv with ansible-core and ansible-lint.
struct Ansible {
    bin: PathBuf,
}

impl Ansible {
    fn install() -> Result<Self, String> {
        let venv = workspace_root().join("target/tools/ansible");
        let bin = venv.join("bin");
        if !bin.join("python").exists() {
            run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        }
        run(Command::new(bin.join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PYPI_TOOLS))?;
        Ok(Self { bin })
    }
}

/// One inventory host: its name, its fake server's config, and its role variables.
struct Host {
    name: &'static str,
    config: PathBuf,
    vars: serde_json::Value,
}

struct Fleet {
    ansible: Ansible,
    work: PathBuf,
}

/// How each host ended, from the play recap: `(ok, changed, failed)`.
type Recap = BTreeMap<String, (u32, u32, u32)>;

impl Fleet {
    /// A fake server of 3 resellers (each with an access hash) for `name`; `converted`
    /// converts them first, so that the host has no work left.
    fn host(&self, name: &'static str, seed: u32, converted: bool) -> Result<Host, String> {
        let tree = self.work.join(name);
        let config = output(
            Command::new(debug_binary("fake-server"))
                .args([
                    "generate",
                    "--resellers",
                    "3",
                    "--backend",
                    "files",
                    "--seed",
                ])
                .arg(seed.to_string())
                .arg("--out")
                .arg(&tree),
        )?;
        let config = PathBuf::from(config.trim());
        if converted {
            output(
                Command::new(debug_binary("convert_accesshash_to_token"))
                    .arg("--all-resellers")
                    .arg("--config")
                    .arg(&config),
            )?;
        }
        Ok(Host {
            name,
            config,
            vars: serde_json::json!({}),
        })
    }

    /// Runs the example playbook on `hosts`; returns its exit status, output and recap.
    fn play(
        &self,
        hosts: &[&Host],
        extra: &[&str],
        play_vars: serde_json::Value,
    ) -> Result<(i32, String, Recap), String> {
        self.play_book("whmtoken.cpanel.migrate", hosts, extra, play_vars)
    }

    /// Runs the playbook `book` of the collection on `hosts`; returns its exit status,
    /// output and recap.
    fn play_book(
        &self,
        book: &str,
        hosts: &[&Host],
        extra: &[&str],
        play_vars: serde_json::Value,
    ) -> Result<(i32, String, Recap), String> {
        self.play_book_from(&self.work, book, hosts, extra, play_vars)
    }

    /// Runs the playbook `book` as [`Fleet::play_book`] does, from the directory `dir` (its
    /// working directory and `PWD`, as a shell would run it there).
    fn play_book_from(
        &self,
        dir: &Path,
        book: &str,
        hosts: &[&Host],
        extra: &[&str],
        play_vars: serde_json::Value,
    ) -> Result<(i32, String, Recap), String> {
        let inventory_file = self.write_inventory(hosts)?;
        let mut settings =
            serde_json::json!({ "whmtoken_install": false, "whmtoken_become": false });
        let settings_map = settings.as_object_mut().expect("an object");
        settings_map.extend(play_vars.as_object().cloned().unwrap_or_default());
        // A null play variable leaves that variable to the inventory.
        settings_map.retain(|_, value| !value.is_null());
        let mut command = Command::new(self.ansible.bin.join("ansible-playbook"));
        command
            .arg("-i")
            .arg(&inventory_file)
            .arg("-e")
            .arg(settings.to_string())
            .args(extra)
            .arg(book);
        self.ansible_env(&mut command);
        command.current_dir(dir).env("PWD", dir);
        eprintln!("xtask: {command:?}");
        let out = command
            .output()
            .map_err(|e| format!("cannot run ansible-playbook: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let text = format!("{stdout}{stderr}");
        let recap = recap(&stdout);
        eprintln!(
            "xtask: ansible-playbook exited {:?}; recap {recap:?}",
            out.status.code()
        );
        Ok((out.status.code().unwrap_or(-1), text, recap))
    }

    /// Writes the inventory of `hosts` (group `cpanel`), returning its path.
    fn write_inventory(&self, hosts: &[&Host]) -> Result<PathBuf, String> {
        // The system's Python, without Ansible: the modules need only its standard library.
        let python = ["/usr/bin/python3", "python3"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("python3");
        let mut inventory = serde_json::Map::new();
        for host in hosts {
            let mut vars = serde_json::json!({
                "ansible_connection": "local",
                "ansible_python_interpreter": python,
                "whmtoken_config": host.config,
                "whmtoken_binary": debug_binary("convert_accesshash_to_token"),
                "whmtoken_cli": debug_binary("whmtoken"),
            });
            let extra_vars = host.vars.as_object().cloned().unwrap_or_default();
            vars.as_object_mut().expect("an object").extend(extra_vars);
            inventory.insert(host.name.to_owned(), vars);
        }
        let inventory =
            serde_json::json!({ "all": { "children": { "cpanel": { "hosts": inventory } } } });
        let inventory_file = self.work.join("inventory.json");
        std::fs::write(&inventory_file, inventory.to_string())
            .map_err(|e| format!("{}: {e}", inventory_file.display()))?;
        Ok(inventory_file)
    }

    /// `whmtoken.cpanel.whmtoken_audit` run ad hoc on `host` with `fail_on`: whether it
    /// succeeded, and the module's result.
    fn audit(&self, host: &Host, fail_on: &str) -> Result<(bool, serde_json::Value), String> {
        let inventory_file = self.write_inventory(&[host])?;
        let args = serde_json::json!({
            "binary": debug_binary("whmtoken"),
            "config": host.config,
            "fail_on": fail_on,
        });
        let mut command = Command::new(self.ansible.bin.join("ansible"));
        command
            .arg("-i")
            .arg(&inventory_file)
            .args(["-m", "whmtoken.cpanel.whmtoken_audit", "-a"])
            .arg(args.to_string())
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
            .ok_or_else(|| format!("fleet: no result from the audit module:\n{stdout}"))?;
        Ok((out.status.success(), result))
    }

    /// The environment of every Ansible command: the collection found in `contrib/ansible`,
    /// no user or system configuration, temporary files in `target/fleet/tmp`.
    fn ansible_env(&self, command: &mut Command) {
        let tmp = self.work.join("tmp");
        command
            .env(
                "ANSIBLE_COLLECTIONS_PATH",
                workspace_root().join("contrib/ansible"),
            )
            .env("ANSIBLE_CONFIG", self.work.join("no-ansible.cfg"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_LOCAL_TEMP", &tmp)
            .env("ANSIBLE_REMOTE_TEMP", &tmp)
            .env("ANSIBLE_HOME", self.work.join("ansible-home"))
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
            .env("PATH", path_with(&self.ansible.bin))
            .env("PWD", &self.work)
            .current_dir(&self.work);
    }

    fn check_run_rerun(&self) -> Result<(), String> {
        let busy_a = self.host("busy-a", 1, false)?;
        let busy_b = self.host("busy-b", 2, false)?;
        let done = self.host("done", 3, true)?;
        let hosts = [&busy_a, &busy_b, &done];
        let serial = serde_json::json!({ "whmtoken_serial": 3 });
        let before = dumps(&hosts)?;
        let (status, text, recap) = self.play(&hosts, &["--check"], serial.clone())?;
        expect(status == 0, "the --check run failed", &text)?;
        expect_changed(&recap, &[("busy-a", 1), ("busy-b", 1), ("done", 0)], &text)?;
        expect(
            text.contains("\"converted\": 3"),
            "the --check run should report 3 would-be conversions",
            &text,
        )?;
        expect(dumps(&hosts)? == before, "--check changed a server", &text)?;

        let (status, text, recap) = self.play(&hosts, &[], serial.clone())?;
        expect(status == 0, "the real run failed", &text)?;
        expect_changed(&recap, &[("busy-a", 1), ("busy-b", 1), ("done", 0)], &text)?;
        let after = dumps(&hosts)?;
        for (index, host) in hosts.iter().enumerate() {
            let changed = after[index] != before[index];
            expect(
                changed == (host.name != "done"),
                &format!("{}'s server changed: {changed}", host.name),
                &text,
            )?;
        }

        let (status, text, recap) = self.play(&hosts, &[], serial)?;
        expect(status == 0, "the rerun failed", &text)?;
        expect_changed(&recap, &[("busy-a", 0), ("busy-b", 0), ("done", 0)], &text)?;
        expect(dumps(&hosts)? == after, "the rerun changed a server", &text)?;
        eprintln!("xtask: fleet: --check changed nothing, the run converted, the rerun was ok");

        // The audit as facts: the resellers converted, root (not a reseller) not.
        let (succeeded, result) = self.audit(&busy_a, "never")?;
        let shown = result.to_string();
        expect(
            succeeded && result["changed"] == false,
            "the audit failed",
            &shown,
        )?;
        let accounts = result["ansible_facts"]["whmtoken_audit"]["accounts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let states: Vec<(String, String)> = accounts
            .iter()
            .map(|a| {
                (
                    a["user"].as_str().unwrap_or("").to_owned(),
                    a["accesshash"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let expected: Vec<(String, String)> = [
            ("root", "not_converted"),
            ("res00001", "converted"),
            ("res00002", "converted"),
            ("res00003", "converted"),
        ]
        .map(|(u, s)| (u.to_owned(), s.to_owned()))
        .into();
        expect(
            states == expected,
            &format!("audit facts {states:?}"),
            &shown,
        )?;
        let (succeeded, result) = self.audit(&busy_a, "critical")?;
        expect(
            !succeeded && result["ansible_facts"]["whmtoken_audit"]["accounts"].is_array(),
            "fail_on critical should fail the host (root's access hash is not converted), with the facts",
            &result.to_string(),
        )?;
        eprintln!("xtask: fleet: the audit module returned the report as facts");
        Ok(())
    }

    fn a_failed_batch_stops_the_play(&self) -> Result<(), String> {
        let first = self.host("batch1", 11, false)?;
        let mut failing = self.host("batch2-failing", 12, false)?;
        failing.vars = serde_json::json!({
            "whmtoken_all_resellers": false,
            "whmtoken_users": ["res00001", "ghost"],
        });
        let sibling = self.host("batch2-ok", 13, false)?;
        let last = self.host("batch3", 14, false)?;
        let hosts = [&first, &failing, &sibling, &last];
        let before = dumps(&hosts)?;
        let play_vars =
            serde_json::json!({ "whmtoken_serial": [1, 2], "whmtoken_max_fail_percentage": 0 });
        let (status, text, recap) = self.play(&hosts, &[], play_vars)?;
        expect_stopped_at_failing_host(
            (status, &text, &recap),
            "batch2-failing",
            &[("batch1", 1), ("batch2-ok", 1)],
            "batch3",
        )?;
        let after = dumps(&hosts)?;
        // The failing host still converted its good user; the last batch is untouched.
        let changed: Vec<bool> = before.iter().zip(&after).map(|(b, a)| b != a).collect();
        expect(
            changed == [true, true, true, false],
            &format!("servers changed: {changed:?}"),
            &text,
        )?;
        eprintln!("xtask: fleet: a failed host stopped the play after its batch");
        Ok(())
    }

    /// `whmtoken_install: false` set in the inventory (not as an extra variable): the play
    /// gathers no facts (it runs where Python's platform facts could not be read, and
    /// spends no time on them), and converts.
    fn no_facts_without_the_install(&self) -> Result<(), String> {
        let mut host = self.host("no-install", 31, false)?;
        host.vars = serde_json::json!({ "whmtoken_install": false });
        let play_vars = serde_json::json!({ "whmtoken_install": null, "whmtoken_serial": 1 });
        let (status, text, recap) = self.play(&[&host], &[], play_vars)?;
        expect(status == 0, "the run failed", &text)?;
        expect_changed(&recap, &[("no-install", 1)], &text)?;
        expect(
            // ok=2: the conversion and its report; reading facts would be a third.
            !text.contains("Gathering Facts") && recap.get("no-install").is_some_and(|r| r.0 == 2),
            "with whmtoken_install: false in the inventory, no facts should be gathered",
            &text,
        )?;
        eprintln!("xtask: fleet: whmtoken_install: false in the inventory gathered no facts");
        Ok(())
    }

    /// Each module's documentation as Ansible reads it (`ansible-doc`: its YAML parses and
    /// has options), then `ansible-lint --strict` on the collection.
    fn lint(&self) -> Result<(), String> {
        for module in MODULES {
            let mut command = Command::new(self.ansible.bin.join("ansible-doc"));
            command.args(["--json", &format!("whmtoken.cpanel.{module}")]);
            self.ansible_env(&mut command);
            let doc = output(&mut command)?;
            let doc: serde_json::Value =
                serde_json::from_str(&doc).map_err(|e| format!("ansible-doc {module}: {e}"))?;
            let options = &doc[format!("whmtoken.cpanel.{module}")]["doc"]["options"];
            if !options.get("binary").is_some_and(|b| b["type"] == "path") {
                return Err(format!("ansible-doc {module}: no `binary` option: {doc}"));
            }
            documents_everything(module, &doc[format!("whmtoken.cpanel.{module}")])?;
        }
        let collection =
            workspace_root().join("contrib/ansible/ansible_collections/whmtoken/cpanel");
        let mut command = Command::new(self.ansible.bin.join("ansible-lint"));
        command.args(["--offline", "--strict"]).arg(&collection);
        self.ansible_env(&mut command);
        command.current_dir(&collection);
        run(&mut command)
    }
}

/// Whether `ansible-doc`'s `doc` of `module` documents exactly the options its
/// `argument_spec` takes, each with a description, and describes each return value.
fn documents_everything(module: &str, doc: &serde_json::Value) -> Result<(), String> {
    let source = workspace_root().join(format!(
        "contrib/ansible/ansible_collections/whmtoken/cpanel/plugins/modules/{module}.py"
    ));
    let source =
        std::fs::read_to_string(&source).map_err(|e| format!("{}: {e}", source.display()))?;
    // The names at the first level of `argument_spec=dict(…)`.
    let mut spec = std::collections::BTreeSet::new();
    let mut depth = 1;
    for line in source
        .lines()
        .skip_while(|line| !line.contains("argument_spec=dict("))
        .skip(1)
    {
        if let (1, Some((name, _))) = (depth, line.trim().split_once("=dict(")) {
            spec.insert(name);
        }
        depth += line.matches('(').count() as i64 - line.matches(')').count() as i64;
        if depth <= 0 {
            break;
        }
    }
    let described = |list: &serde_json::Value| -> std::collections::BTreeSet<String> {
        list.as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| !v["description"].is_null() && v["description"] != "")
            .map(|(k, _)| k.clone())
            .collect()
    };
    let options = described(&doc["doc"]["options"]);
    let returns = described(&doc["return"]);
    let all_returns = doc["return"].as_object().map_or(0, serde_json::Map::len);
    if spec.is_empty() || options.iter().map(String::as_str).ne(spec.iter().copied()) {
        return Err(format!(
            "{module}: the options documented with a description ({options:?}) are not the argument_spec's ({spec:?})"
        ));
    }
    if returns.is_empty() || returns.len() != all_returns {
        return Err(format!(
            "{module}: a return value has no description: {}",
            doc["return"]
        ));
    }
    Ok(())
}

/// `PATH` with `bin` first.
fn path_with(bin: &Path) -> std::ffi::OsString {
    let rest = std::env::var_os("PATH").unwrap_or_default();
    let paths = std::iter::once(bin.to_owned()).chain(std::env::split_paths(&rest));
    std::env::join_paths(paths).unwrap_or(rest)
}

/// The role with its install step on (`cargo xtask ci`, as root, in the throwaway root
/// after the DEB's install check: `throwaway_root`), on one local host:
///
/// 1. Without `whmtoken_allow_unsigned`, the DEB file (which carries no signature apt
///    checks) is refused, and nothing is installed.
/// 2. With it, and a file another user planted first at `/var/tmp/<the package's name>`
///    (where the role once copied the package): the role installs our bytes (the
///    installed binaries are the release build's) and leaves the planted file alone (its
///    bytes, owner and mode); it converts that host's fake server with the installed
///    `/usr/sbin/convert_accesshash_to_token`, and leaves no copy of the package behind.
///    A rerun changes nothing.
///
/// The package and what it installs vanish with the throwaway root.
pub(crate) fn the_role_installs_the_package(deb: &Path) -> Result<(), String> {
    if crate::package_check::is_installed()? {
        return Err(
            "whmtoken is already installed here: remove it first (dpkg -P whmtoken)".into(),
        );
    }
    let work = target_dir().join("fleet-install");
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    }
    std::fs::create_dir_all(work.join("tmp")).map_err(|e| format!("{}: {e}", work.display()))?;
    let fleet = Fleet {
        ansible: Ansible::install()?,
        work,
    };
    let mut host = fleet.host("installed", 21, false)?;
    host.vars = serde_json::json!({ "whmtoken_binary": "/usr/sbin/convert_accesshash_to_token" });
    let before = dumps(&[&host])?;
    let mut play_vars = serde_json::json!({
        "whmtoken_install": true,
        "whmtoken_package": deb,
        "whmtoken_serial": 1,
    });
    let (status, text, _) = fleet.play(&[&host], &[], play_vars.clone())?;
    expect(status != 0, "an unsigned DEB file should be refused", &text)?;
    expect(
        text.contains("carries no signature") && !crate::package_check::is_installed()?,
        "the refusal should say why, and nothing be installed",
        &text,
    )?;
    play_vars["whmtoken_allow_unsigned"] = true.into();
    let planted = Planted::plant(deb)?;
    let (status, text, recap) = fleet.play(&[&host], &[], play_vars.clone())?;
    planted.is_untouched()?;
    expect(status == 0, "the run with the install step failed", &text)?;
    // Installed, converted (the folder of the run and its copy are not changes).
    expect_changed(&recap, &[("installed", 2)], &text)?;
    installed_binaries_are_ours()?;
    expect(
        dumps(&[&host])? != before,
        "the server was not converted",
        &text,
    )?;
    let after = dumps(&[&host])?;
    let (status, text, recap) = fleet.play(&[&host], &[], play_vars)?;
    expect(status == 0, "the rerun with the install step failed", &text)?;
    expect_changed(&recap, &[("installed", 0)], &text)?;
    expect(
        dumps(&[&host])? == after,
        "the rerun changed the server",
        &text,
    )?;
    planted.is_untouched()?;
    eprintln!(
        "xtask: fleet: the role refused an unsigned DEB file, then (allowed) installed our bytes \
         beside a planted /var/tmp file it left alone, and converted with them; a rerun was ok"
    );
    run(Command::new("dpkg").args(["-P", "whmtoken"]))?;
    the_role_installs_from_the_repository(&fleet, &host)
}

/// The role with `whmtoken_repository` (the signed apt repository `cargo xtask dist`
/// laid out, as a `file:` URL) and `whmtoken_signing_key`: apt reads it with the key and
/// installs our bytes.
fn the_role_installs_from_the_repository(fleet: &Fleet, host: &Host) -> Result<(), String> {
    let play_vars = serde_json::json!({
        "whmtoken_install": true,
        "whmtoken_repository": format!("file://{}", crate::repo::repo_dir().display()),
        "whmtoken_signing_key": crate::repo::public_key(),
        "whmtoken_serial": 1,
    });
    let (status, text, _) = fleet.play(&[host], &[], play_vars)?;
    expect(
        status == 0,
        "the run installing from the repository failed",
        &text,
    )?;
    installed_binaries_are_ours()?;
    run(Command::new("dpkg").args(["-P", "whmtoken"]))?;
    eprintln!("xtask: fleet: the role installed whmtoken from the signed apt repository");
    Ok(())
}

/// A file another user (uid and gid 65534) made, before the role ran, where the role used
/// to copy the package: `/var/tmp/<the package's file name>`, writable by its owner.
struct Planted {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl Planted {
    const OWNER: u32 = 65534;

    fn plant(package: &Path) -> Result<Self, String> {
        let name = package.file_name().ok_or("a package file has a name")?;
        let path = Path::new("/var/tmp").join(name);
        let bytes = b"#!/bin/sh\n# planted by another user before the role ran\n".to_vec();
        std::fs::write(&path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        std::os::unix::fs::chown(&path, Some(Self::OWNER), Some(Self::OWNER))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self { path, bytes })
    }

    /// Its bytes, owner and mode as planted.
    fn is_untouched(&self) -> Result<(), String> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(&self.path)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        let bytes =
            std::fs::read(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let unchanged = bytes == self.bytes && meta.mode() & 0o7777 == 0o644;
        if !unchanged || meta.uid() != Self::OWNER || meta.gid() != Self::OWNER {
            return Err(format!(
                "fleet: the role changed the file another user planted at {} (now owned by {}:{}, \
                 {} bytes): it must copy the package elsewhere",
                self.path.display(),
                meta.uid(),
                meta.gid(),
                bytes.len()
            ));
        }
        Ok(())
    }
}

/// The installed binaries are the release build's, byte for byte.
fn installed_binaries_are_ours() -> Result<(), String> {
    for binary in crate::dist::SERVER_BINARIES {
        let installed = Path::new("/usr/sbin").join(binary);
        let built = crate::dist::release_dir().join(binary);
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        if read(&installed)? != read(&built)? {
            return Err(format!(
                "fleet: {} is not the release build's {}",
                installed.display(),
                built.display()
            ));
        }
    }
    Ok(())
}

fn debug_binary(name: &str) -> PathBuf {
    target_dir().join("debug").join(name)
}

/// Each host's server, as `fake-server dump` prints it.
fn dumps(hosts: &[&Host]) -> Result<Vec<String>, String> {
    hosts
        .iter()
        .map(|host| {
            output(
                Command::new(debug_binary("fake-server"))
                    .arg("dump")
                    .arg("--config")
                    .arg(&host.config),
            )
        })
        .collect()
}

/// The `PLAY RECAP` lines: `host : ok=3 changed=1 unreachable=0 failed=0 …`.
fn recap(stdout: &str) -> Recap {
    let Some((_, lines)) = stdout.rsplit_once("PLAY RECAP") else {
        return Recap::new();
    };
    lines
        .lines()
        .filter_map(|line| {
            let (host, counts) = line.split_once(" : ")?;
            let count = |key: &str| {
                counts
                    .split_whitespace()
                    .find_map(|c| c.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
            };
            Some((
                host.trim().to_owned(),
                (count("ok")?, count("changed")?, count("failed")?),
            ))
        })
        .collect()
}

fn expect(condition: bool, what: &str, output: &str) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(format!(
            "fleet: {what}; ansible-playbook printed:\n{output}"
        ))
    }
}

/// A play whose `failing` host (its user `ghost` not a reseller) failed it: the run failed,
/// with ghost's error, the hosts before it changed as `changed` says, and the batch with
/// `next` never started.
fn expect_stopped_at_failing_host(
    (status, text, recap): (i32, &str, &Recap),
    failing: &str,
    changed: &[(&str, u32)],
    next: &str,
) -> Result<(), String> {
    expect(status != 0, "a failed host should fail the run", text)?;
    expect(
        recap.get(failing).is_some_and(|r| r.2 == 1),
        &format!("{failing} should have failed"),
        text,
    )?;
    expect(
        text.contains("ghost: User ghost is not a reseller."),
        "the failing user's error should be reported",
        text,
    )?;
    expect_changed(recap, changed, text)?;
    expect(
        !recap.contains_key(next),
        "the batch after the failed one should not have started",
        text,
    )
}

fn expect_changed(recap: &Recap, expected: &[(&str, u32)], output: &str) -> Result<(), String> {
    for (host, changed) in expected {
        let got = recap.get(*host);
        expect(
            got.is_some_and(|r| r.1 == *changed && r.2 == 0),
            &format!("{host}: expected changed={changed} failed=0, got {got:?}"),
            output,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recap_is_read_per_host() {
        let out = "PLAY RECAP *********\n\
            busy-a                     : ok=3    changed=1    unreachable=0    failed=0    skipped=3    rescued=0    ignored=0   \n\
            done                       : ok=2    changed=0    unreachable=0    failed=1    skipped=3    rescued=0    ignored=0   \n";
        let recap = recap(out);
        assert_eq!(recap["busy-a"], (3, 1, 0));
        assert_eq!(recap["done"], (2, 0, 1));
        assert_eq!(recap.len(), 2);
    }
}
