//! Privileged: the same busybox bundle under accelgate, Debian's runc and (where it runs) crun
//! must look the same from inside: mount points and types, `/dev` nodes and `/dev` links. The
//! only differences allowed are the ones accelgate's plan rules add, listed in docs/run.md.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const PROBE: &str = "cat /proc/self/mountinfo; echo ===; ls -ln /dev; echo ===; \
                     for l in fd stdin stdout stderr ptmx core; do echo $l $(readlink /dev/$l); done";

/// What the container sees, normalised: (mount point, filesystem type, read-only), the `/dev`
/// entries as (type and mode, owner, numbers, name), and the links.
#[derive(Debug, PartialEq, Eq)]
struct View {
    mounts: BTreeSet<(String, String, bool)>,
    dev: BTreeSet<String>,
    links: Vec<String>,
}

fn view(output: &std::process::Output, who: &str) -> View {
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{who} failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parts: Vec<&str> = text.split("===\n").collect();
    assert_eq!(parts.len(), 3, "{who}: {text}");
    let mounts = parts[0]
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            let readonly = fields[5].split(',').any(|o| o == "ro");
            Some((fields[4].to_owned(), fields[dash + 1].to_owned(), readonly))
        })
        .collect();
    let dev = parts[1]
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // mode, uid, gid, then "major," "minor" or a size, date (3 fields), name [-> target]
            let numbers = if f[4].ends_with(',') {
                format!("{}{}", f[4], f[5])
            } else {
                String::new()
            };
            let name = line
                .split_whitespace()
                .skip(if numbers.is_empty() { 8 } else { 9 })
                .collect::<Vec<_>>()
                .join(" ");
            format!("{} {} {} {numbers} {name}", f[0], f[2], f[3])
        })
        .collect();
    let links = parts[2].lines().map(str::to_owned).collect();
    View { mounts, dev, links }
}

fn bundle() -> common::TempBundle {
    common::runnable_bundle(|spec| {
        spec["process"]["args"] = serde_json::json!(["sh", "-c", PROBE]);
        let mounts = spec["mounts"].as_array_mut().unwrap();
        mounts.push(serde_json::json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}));
        mounts.push(serde_json::json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}));
    })
}

fn ours(bundle: &Path) -> View {
    view(&common::run_sandbox(bundle, None, &[]), "accelgate")
}

/// The differences docs/run.md lists: accelgate adds an internal tmpfs on an empty /tmp.
fn without_documented_additions(mut view: View) -> View {
    view.mounts
        .retain(|(point, fs, _)| !(point == "/tmp" && fs == "tmpfs"));
    view
}

/// Where the runtimes differ among themselves: what backs a masked file (the container's or
/// the host's /dev/null, read-only or not), and crun's `/dev/core` link, which it makes even
/// when the host has no `/proc/kcore` (accelgate and runc make it only when there is one).
fn runtime_neutral(mut view: View, masked_files: &[&str]) -> View {
    view.mounts = view
        .mounts
        .into_iter()
        .map(|(point, fs, ro)| {
            if masked_files.contains(&point.as_str()) {
                (point, "masked file".into(), true)
            } else {
                (point, fs, ro)
            }
        })
        .collect();
    view.dev
        .retain(|entry| !entry.ends_with(" core -> /proc/kcore"));
    view.links.retain(|link| !link.starts_with("core"));
    view
}

const MASKED_FILES: [&str; 2] = ["/proc/keys", "/proc/kcore"];

fn tool(name: &str) -> bool {
    let found = Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var_os("ACCELGATE_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1") {
        panic!("{name} is not installed (scripts/setup installs it)");
    }
    if !found {
        eprintln!("SKIPPED: {name} is not installed");
    }
    found
}

#[test]
fn accelgate_and_runc_show_the_same_container() {
    if !common::privileged("accelgate_and_runc_show_the_same_container") || !tool("runc") {
        return;
    }
    let bundle = bundle();
    let id = format!("accelgate-diff-{}", std::process::id());
    let runc = Command::new("runc")
        .args(["run", "--bundle", bundle.dir.path().to_str().unwrap(), &id])
        .output()
        .unwrap();
    let _ = Command::new("runc")
        .args(["delete", "--force", &id])
        .output();
    let (runc, ours) = (view(&runc, "runc"), ours(bundle.dir.path()));
    assert_eq!(
        runtime_neutral(without_documented_additions(ours), &MASKED_FILES),
        runtime_neutral(runc, &MASKED_FILES)
    );
}

#[test]
fn accelgate_and_crun_show_the_same_container() {
    if !common::privileged("accelgate_and_crun_show_the_same_container") || !tool("crun") {
        return;
    }
    let bundle = bundle();
    // crun refuses hybrid cgroup hosts; in a private mount namespace with cgroup2 at
    // /sys/fs/cgroup and no cgroup manager it runs (reference/runtimes.md, section 7).
    let script = format!(
        "umount -R /sys/fs/cgroup 2>/dev/null; mount -t cgroup2 none /sys/fs/cgroup && \
         exec crun --cgroup-manager=disabled run --bundle {} accelgate-diff-{}",
        bundle.dir.path().display(),
        std::process::id()
    );
    let crun = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .unwrap();
    if !crun.status.success() {
        let why = format!(
            "crun does not run on this host: {}",
            String::from_utf8_lossy(&crun.stderr)
        );
        if std::env::var_os("ACCELGATE_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1") {
            panic!("{why}, and ACCELGATE_REQUIRE_PRIVILEGED=1 forbids skipping");
        }
        eprintln!("SKIPPED: {why}");
        return;
    }
    let crun = view(&crun, "crun");
    // crun saw a cgroup2-only host, accelgate the real one: compare all but the cgroup mounts.
    let no_cgroups = |mut v: View| {
        v.mounts
            .retain(|(point, _, _)| !point.starts_with("/sys/fs/cgroup"));
        v
    };
    let ours = runtime_neutral(
        without_documented_additions(ours(bundle.dir.path())),
        &MASKED_FILES,
    );
    assert_eq!(
        no_cgroups(ours),
        no_cgroups(runtime_neutral(crun, &MASKED_FILES))
    );
}
