//! The race battery of issue 25: a hostile tenant, on a thread acting as the account's own
//! uid, flips symbolic links, folders, FIFOs and hard links at the account's `.accesshash`,
//! at its set-aside names (`.accesshash.whmtoken-*`) and at its home folder while root
//! runs `retire`, then `restore`, 500 attempts each. After each attempt: no file outside
//! the tree and no root-owned file of the tree changed (the run's own journal, backups and
//! audit log aside), nothing in the tenant's folder belongs to root or carries a setuid,
//! setgid or sticky bit, no backup holds anything but the attempt's secret, and that secret
//! is not lost: it is in `.accesshash` or in the run's backup.
//!
//! Needs root (a tenant with a uid of its own); skipped, saying so, otherwise.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use camino::{Utf8Path, Utf8PathBuf};
use whmtoken_backend_files::{FilesBackend, FilesConfig};
use whmtoken_core::retire::{self, RetireRequest, RunId, Status};
use whmtoken_core::{AccessHash, FixedClock};
use whmtoken_fixtures::{FakeServer, cpanel_style_access_hash};

const ATTEMPTS: u64 = 500;

/// The tenant's account.
const TENANT: &str = "alice";

/// What a tree or folder holds, entry by entry: owner, group, mode, and content (a file's
/// bytes, a link's target).
type Picture = BTreeMap<Utf8PathBuf, (u32, u32, u32, Vec<u8>)>;

/// Every entry under `dir`, except those under `skip` (relative paths).
fn picture(root: &Utf8Path, dir: &Utf8Path, skip: &[&str], out: &mut Picture) {
    let Ok(entries) = dir.read_dir_utf8() else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path().to_owned();
        let relative = path.strip_prefix(root).unwrap().to_owned();
        if skip.iter().any(|s| relative.as_str().starts_with(s)) {
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let content = if meta.is_file() {
            fs::read(&path).unwrap_or_default()
        } else if meta.is_symlink() {
            fs::read_link(&path)
                .map(|t| t.into_os_string().into_encoded_bytes())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        out.insert(relative, (meta.uid(), meta.gid(), meta.mode(), content));
        if meta.is_dir() {
            picture(root, &path, skip, out);
        }
    }
}

fn picture_of(root: &Utf8Path, skip: &[&str]) -> Picture {
    let mut out = Picture::new();
    picture(root, root, skip, &mut out);
    out
}

/// The paths that differ between two pictures, each with owner and mode before and after.
fn differences(before: &Picture, after: &Picture) -> Vec<String> {
    let brief = |e: Option<&(u32, u32, u32, Vec<u8>)>| {
        e.map(|(uid, _, mode, content)| format!("uid {uid} mode {mode:o} {} bytes", content.len()))
    };
    before
        .keys()
        .chain(after.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|p| before.get(*p) != after.get(*p))
        .map(|p| {
            format!(
                "{p}: {:?} -> {:?}",
                brief(before.get(p)),
                brief(after.get(p))
            )
        })
        .collect()
}

/// A small xorshift generator: the tenant's moves, reproducible per attempt.
struct Moves(u64);

impl Moves {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// What the tenant plants at a name for a moment.
#[derive(Clone, Copy)]
enum Plant {
    /// A symbolic link to a root-owned file outside the tree.
    LinkOut,
    /// A symbolic link to root's access hash in the tree.
    LinkRoot,
    Fifo,
    Folder,
    /// A second hard link to the file that was there.
    HardLink,
}

const PLANTS: [Plant; 5] = [
    Plant::LinkOut,
    Plant::LinkRoot,
    Plant::Fifo,
    Plant::Folder,
    Plant::HardLink,
];

/// The tenant's world: its home's parent (its own folder), the home in it, and the
/// targets of its links.
struct World {
    own: Utf8PathBuf,
    home: Utf8PathBuf,
    outside_file: Utf8PathBuf,
    outside_dir: Utf8PathBuf,
    root_hash: Utf8PathBuf,
    root_home: Utf8PathBuf,
    /// The set-aside name of the run being restored, which the tenant plants at too.
    run_aside: Mutex<Option<Utf8PathBuf>>,
}

/// The inode at `path`, not followed.
fn inode(path: &Utf8Path) -> Option<u64> {
    fs::symlink_metadata(path).ok().map(|m| m.ino())
}

fn rename_noreplace(from: &Utf8Path, to: &Utf8Path) -> bool {
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        from.as_std_path(),
        rustix::fs::CWD,
        to.as_std_path(),
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .is_ok()
}

/// Removes what is at `path` when it is still the tenant's plant `ino`.
fn remove_plant(path: &Utf8Path, ino: Option<u64>) {
    if ino.is_some() && inode(path) == ino {
        let _ = fs::remove_file(path).or_else(|_| fs::remove_dir(path));
    }
}

/// One move: whatever is at `name` is taken aside, `plant` put there for a moment, then
/// removed and what was taken put back (under its name again, never over anything root
/// put there meanwhile: then it stays aside, where the check finds it).
fn flip(world: &World, name: &Utf8Path, plant: Plant, keep: &Utf8Path) {
    let took = rename_noreplace(name, keep);
    let planted = match plant {
        Plant::LinkOut => std::os::unix::fs::symlink(&world.outside_file, name).is_ok(),
        Plant::LinkRoot => std::os::unix::fs::symlink(&world.root_hash, name).is_ok(),
        Plant::Fifo => rustix::fs::mknodat(
            rustix::fs::CWD,
            name.as_std_path(),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .is_ok(),
        Plant::Folder => fs::create_dir(name).is_ok(),
        Plant::HardLink => took && fs::hard_link(keep, name).is_ok(),
    };
    let ino = planted.then(|| inode(name)).flatten();
    std::thread::yield_now();
    remove_plant(name, ino);
    if took {
        let _ = rename_noreplace(keep, name);
    }
}

/// The home folder swapped for a moment for a link out of the tree, or to root's home.
fn flip_home(world: &World, out: bool) {
    let aside = world.own.join("h.kept");
    if !rename_noreplace(&world.home, &aside) {
        return;
    }
    let target = if out {
        &world.outside_dir
    } else {
        &world.root_home
    };
    let planted = std::os::unix::fs::symlink(target, &world.home).is_ok();
    std::thread::yield_now();
    if planted {
        let _ = fs::remove_file(&world.home);
    }
    let _ = rename_noreplace(&aside, &world.home);
}

/// The tenant's loop, as the tenant's uid, until `stop`.
fn tenant(world: &World, uid: u32, stop: &AtomicBool, seed: u64) {
    let (u, g) = (
        rustix::process::Uid::from_raw(uid),
        rustix::process::Gid::from_raw(uid),
    );
    rustix::thread::set_thread_groups(&[]).unwrap();
    rustix::thread::set_thread_res_gid(g, g, g).unwrap();
    rustix::thread::set_thread_res_uid(u, u, u).unwrap();
    let mut moves = Moves(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        // A pause of up to a fifth of a millisecond: some runs get through between moves.
        std::thread::sleep(std::time::Duration::from_micros(moves.next(200)));
        let keep = world.own.join(format!("kept-{n}"));
        let plant = PLANTS[moves.next(PLANTS.len() as u64) as usize];
        match moves.next(8) {
            0..=3 => flip(world, &world.home.join(".accesshash"), plant, &keep),
            4..=5 => {
                let names: Vec<Utf8PathBuf> = world
                    .home
                    .read_dir_utf8()
                    .into_iter()
                    .flatten()
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().starts_with(".accesshash.whmtoken-"))
                    .map(|e| e.path().to_owned())
                    .chain(
                        world
                            .run_aside
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .clone(),
                    )
                    .collect();
                for name in names {
                    flip(world, &name, plant, &keep);
                }
            }
            6 => flip_home(world, true),
            _ => flip_home(world, false),
        }
    }
}

/// Runs `work` (as root) while the tenant plays; the tenant is stopped (its moves
/// finished) before this returns.
fn with_tenant<T>(world: &World, uid: u32, seed: u64, work: impl FnOnce() -> T) -> T {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let player = scope.spawn(|| tenant(world, uid, &stop, seed));
        let result = work();
        stop.store(true, Ordering::Relaxed);
        player.join().expect("the tenant's thread");
        result
    })
}

/// The tree, the outside and the tenant's world.
struct Battery {
    server: FakeServer,
    _outside: tempfile::TempDir,
    outside: Utf8PathBuf,
    world: World,
    uid: u32,
    backend: FilesBackend,
}

/// The parts of the tree a run writes (its journal, backups, audit log and the lock
/// source of its dot-locks, which lives as long as the backend), the token folder (written
/// by the test) and the tenant's own folder: everything else must stay as it is. Prefixes
/// of paths, as text.
const WRITTEN: [&str; 5] = [
    "home/alice",
    "var/lib",
    "var/cpanel/accounting.log",
    "var/cpanel/whmtoken.lock-",
    "var/cpanel/authn",
];

impl Battery {
    fn new() -> Self {
        let mut server = FakeServer::new();
        server.write_access_hash("root", &cpanel_style_access_hash("root"));
        let uid = server.add_reseller(TENANT, &["list-accts"]);
        // The home is a folder in the tenant's own folder, so that it can swap it.
        let own = server.root().join("home/alice");
        let home = own.join("h");
        let passwd = server.root().join("etc/passwd");
        let text = fs::read_to_string(&passwd).unwrap();
        fs::write(&passwd, text.replace("::/home/alice:", "::/home/alice/h:")).unwrap();
        fs::create_dir(&home).unwrap();
        for folder in [&own, &home] {
            std::os::unix::fs::chown(folder, Some(uid), Some(uid)).unwrap();
            fs::set_permissions(folder, fs::Permissions::from_mode(0o711)).unwrap();
        }
        let outside_temp = tempfile::tempdir().unwrap();
        let outside = Utf8PathBuf::from_path_buf(outside_temp.path().to_owned()).unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o755)).unwrap();
        let outside_file = outside.join("shadow");
        fs::write(&outside_file, "root's own secret\n").unwrap();
        fs::set_permissions(&outside_file, fs::Permissions::from_mode(0o600)).unwrap();
        let outside_dir = outside.join("etc");
        fs::create_dir(&outside_dir).unwrap();
        fs::write(
            outside_dir.join(".accesshash"),
            "root's outside access hash\n",
        )
        .unwrap();
        let world = World {
            own,
            home,
            outside_file,
            outside_dir,
            root_hash: server.access_hash_path("root"),
            root_home: server.home("root"),
            run_aside: Mutex::new(None),
        };
        let backend = FilesBackend::open(&FilesConfig {
            root: server.root().to_owned(),
        })
        .unwrap();
        Self {
            server,
            _outside: outside_temp,
            outside,
            world,
            uid,
            backend,
        }
    }

    /// Attempt `n`'s secret, as the tenant's `.accesshash`, converted (its token stored);
    /// the tenant's folder cleared of everything else first.
    fn prepare(&self, n: u64) -> Vec<u8> {
        let home = &self.world.home;
        if fs::symlink_metadata(home).is_ok_and(|m| !m.is_dir()) {
            fs::remove_file(home).unwrap();
        }
        for entry in self.world.own.read_dir_utf8().unwrap() {
            let path = entry.unwrap().path().to_owned();
            if path != *home {
                remove_any(&path);
            }
        }
        if !home.is_dir() {
            fs::create_dir(home).unwrap();
            std::os::unix::fs::chown(home, Some(self.uid), Some(self.uid)).unwrap();
            fs::set_permissions(home, fs::Permissions::from_mode(0o711)).unwrap();
        }
        for entry in home.read_dir_utf8().unwrap() {
            remove_any(entry.unwrap().path());
        }
        let secret = cpanel_style_access_hash(&format!("attempt {n}"));
        let path = home.join(".accesshash");
        self.server.write_file(&path, secret.as_bytes(), 0o600);
        std::os::unix::fs::chown(&path, Some(self.uid), Some(self.uid)).unwrap();
        let key = AccessHash::from_bytes(secret.as_bytes().to_vec())
            .token_hash()
            .unwrap();
        let doc = serde_json::json!({"tokens": {key.as_str(): {
            "name": format!("accesshash-{n}"), "create_time": 1_700_000_000, "expires_at": null
        }}});
        self.server.write_token_file(TENANT, &doc.to_string());
        secret.into_bytes()
    }

    fn retire(&self, n: u64) -> Option<RunId> {
        let request = RetireRequest {
            users: vec![TENANT.to_owned()],
            disable_auth: false,
            force: false,
            dry_run: false,
            jobs: 1,
            seed: n,
        };
        let clock = FixedClock::at(1_800_000_000 + i64::try_from(n).unwrap() * 2);
        retire::retire(&self.backend, &self.backend, &request, &clock)
            .unwrap()
            .run
    }

    fn restore(&self, id: &RunId) -> Vec<Status> {
        let clock = FixedClock::at(1_900_000_000);
        let report = retire::restore(&self.backend, id, (false, false), 1, &clock).unwrap();
        report.results.into_iter().map(|(_, o)| o.status).collect()
    }

    fn backup(&self, id: &RunId) -> Option<Vec<u8>> {
        fs::read(
            self.server
                .root()
                .join(format!("var/lib/whmtoken/backups/{id}/alice.accesshash")),
        )
        .ok()
    }

    /// The checks of one attempt: nothing of root's changed (`before`), nothing in the
    /// tenant's folder is root's or has a special bit, no backup holds another secret,
    /// and the attempt's secret is in `.accesshash` or the run's backup.
    fn check(&self, n: u64, before: &(Picture, Picture), secret: &[u8], run: Option<&RunId>) {
        let root = self.server.root();
        let outside = differences(&before.0, &picture_of(&self.outside, &[]));
        assert!(
            outside.is_empty(),
            "attempt {n}: files outside the tree changed: {outside:#?}"
        );
        let tree = differences(&before.1, &picture_of(root, &WRITTEN));
        assert!(
            tree.is_empty(),
            "attempt {n}: root-owned files of the tree changed: {tree:#?}"
        );
        for (path, (uid, _, mode, _)) in picture_of(root, &["var", "etc", "root"]) {
            if path.starts_with("home/alice") {
                assert_ne!(uid, 0, "attempt {n}: {path} belongs to root");
                assert_eq!(mode & 0o7000, 0, "attempt {n}: {path} has mode {mode:o}");
            }
        }
        let backup = run.and_then(|id| self.backup(id));
        if let Some(backup) = &backup {
            assert_eq!(
                backup, secret,
                "attempt {n}: the backup holds another secret"
            );
        }
        let home_hash = self.world.home.join(".accesshash");
        let in_home = fs::symlink_metadata(&home_hash).is_ok_and(|m| m.is_file())
            && fs::read(&home_hash).is_ok_and(|c| c == secret);
        assert!(
            in_home || backup.is_some(),
            "attempt {n}: the secret is lost (run {run:?})"
        );
    }
}

fn remove_any(path: &Utf8Path) {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).unwrap(),
        Ok(_) => fs::remove_file(path).unwrap(),
        Err(_) => {}
    }
}

fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
#[expect(clippy::print_stderr, reason = "a skipped test says why")]
fn a_tenant_racing_retire_never_steers_root_nor_loses_its_access_hash() {
    if !running_as_root() {
        eprintln!("skipped: the race battery needs root (a tenant with a uid of its own)");
        return;
    }
    let battery = Battery::new();
    let root = battery.server.root().to_owned();
    let before = (
        picture_of(&battery.outside, &[]),
        picture_of(&root, &WRITTEN),
    );
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for n in 0..ATTEMPTS {
        let secret = battery.prepare(n);
        let run = with_tenant(&battery.world, battery.uid, n, || battery.retire(n));
        battery.check(n, &before, &secret, run.as_ref());
        let outcome = match run.as_ref().and_then(|id| battery.backup(id)) {
            Some(_) if !battery.world.home.join(".accesshash").exists() => "retired",
            Some(_) => "backed up, left in place",
            None => "refused or not attempted",
        };
        *counts.entry(outcome.to_owned()).or_default() += 1;
    }
    eprintln!("retire under races, {ATTEMPTS} attempts: {counts:?}");
}

#[test]
#[expect(clippy::print_stderr, reason = "a skipped test says why")]
fn a_tenant_racing_restore_never_steers_root_nor_loses_its_access_hash() {
    if !running_as_root() {
        eprintln!("skipped: the race battery needs root (a tenant with a uid of its own)");
        return;
    }
    let battery = Battery::new();
    let root = battery.server.root().to_owned();
    let before = (
        picture_of(&battery.outside, &[]),
        picture_of(&root, &WRITTEN),
    );
    let mut statuses = BTreeMap::<String, u64>::new();
    for n in 0..ATTEMPTS {
        let secret = battery.prepare(n);
        let id = battery.retire(n).expect("retired without a tenant at play");
        assert!(!battery.world.home.join(".accesshash").exists());
        *battery
            .world
            .run_aside
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(
            battery
                .world
                .home
                .join(format!(".accesshash.whmtoken-retiring-{id}")),
        );
        let restored = with_tenant(&battery.world, battery.uid, n, || battery.restore(&id));
        battery.check(n, &before, &secret, Some(&id));
        let home_hash = battery.world.home.join(".accesshash");
        if restored == [Status::Restored]
            && fs::symlink_metadata(&home_hash).is_ok_and(|m| m.is_file())
        {
            let meta = fs::metadata(&home_hash).unwrap();
            if fs::read(&home_hash).unwrap() == secret {
                assert_eq!(
                    meta.uid(),
                    battery.uid,
                    "attempt {n}: restored as the tenant's"
                );
            }
        }
        *statuses.entry(format!("{restored:?}")).or_default() += 1;
    }
    eprintln!("restore under races, {ATTEMPTS} attempts: {statuses:?}");
}
