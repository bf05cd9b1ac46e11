//! Mount options: flags, propagation, and filesystem data, sorted out per filesystem type.

/// Mount options sorted out for one filesystem type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// Effective mount flags in first-seen order (`ro`, `nosuid`, ...); a later opposite flag
    /// (`rw`, `suid`, `exec`, `atime`) cancels an earlier one.
    pub flags: Vec<String>,
    /// Filesystem data passed to the filesystem (`mode=1777`, `newinstance`).
    pub data: Vec<String>,
    /// The last propagation option.
    pub propagation: Option<String>,
    /// `Some(recursive)` when the options ask for a bind (`bind` or `rbind`).
    pub bind: Option<bool>,
    /// Options that were ignored, with why; the planner records them.
    pub ignored: Vec<String>,
}

/// Flags and the flags each one cancels.
const FLAGS: &[(&str, &[&str])] = &[
    ("ro", &["rw"]),
    ("rw", &["ro"]),
    ("nosuid", &["suid"]),
    ("suid", &["nosuid"]),
    ("nodev", &["dev"]),
    ("dev", &["nodev"]),
    ("noexec", &["exec"]),
    ("exec", &["noexec"]),
    ("noatime", &["atime", "relatime", "strictatime"]),
    ("relatime", &["atime", "noatime", "strictatime"]),
    ("strictatime", &["atime", "noatime", "relatime"]),
    ("atime", &["noatime", "relatime", "strictatime"]),
    ("nodiratime", &["diratime"]),
    ("diratime", &["nodiratime"]),
    ("sync", &["async"]),
    ("async", &["sync"]),
    ("dirsync", &[]),
];

/// Flags that only undo another and need not be listed once applied.
const DEFAULT_FLAGS: [&str; 7] = ["rw", "suid", "dev", "exec", "atime", "diratime", "async"];

const PROPAGATION: [&str; 8] = [
    "private",
    "rprivate",
    "slave",
    "rslave",
    "shared",
    "rshared",
    "unbindable",
    "runbindable",
];

/// The mount flags, propagation and bind options accelgate understands (for `features`).
pub fn known_options() -> Vec<&'static str> {
    let mut names: Vec<&str> = FLAGS.iter().map(|(name, _)| *name).collect();
    names.extend(PROPAGATION);
    names.extend(["bind", "rbind"]);
    names
}

/// `key=value` data each filesystem takes, and bare words it takes as data.
fn filesystem_data(fs_type: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match fs_type {
        "tmpfs" => (
            &[
                "mode",
                "size",
                "uid",
                "gid",
                "nr_inodes",
                "nr_blocks",
                "huge",
            ],
            &[],
        ),
        "devpts" => (&["ptmxmode", "mode", "gid", "uid", "max"], &["newinstance"]),
        "proc" => (&["hidepid", "subset"], &[]),
        "cgroup" => (&["name", "release_agent"], &["none", "noprefix", "xattr"]),
        "cgroup2" => (
            &[],
            &[
                "nsdelegate",
                "memory_recursiveprot",
                "favordynmods",
                "memory_localevents",
            ],
        ),
        "overlay" => (
            &[
                "lowerdir",
                "upperdir",
                "workdir",
                "redirect_dir",
                "index",
                "metacopy",
                "xino",
                "uuid",
            ],
            &["userxattr", "volatile"],
        ),
        "erofs" => (&["device", "cache_strategy", "domain_id", "fsid"], &[]),
        "fuse" => (
            &[
                "fd", "rootmode", "user_id", "group_id", "max_read", "blksize",
            ],
            &["allow_other", "default_permissions"],
        ),
        _ => (&[], &[]),
    }
}

/// Sorts out `options` for a mount of `fs_type` (`bind` for binds).
///
/// Errors (with the reason) on an option with two `=`, and on `key=value` data that tmpfs
/// does not take or whose value is malformed; other unknown options are ignored and listed.
pub fn parse(fs_type: &str, options: &[String]) -> Result<MountOptions, String> {
    let mut parsed = MountOptions::default();
    let (data_keys, data_words) = filesystem_data(fs_type);
    for option in options {
        let option = option.trim();
        if option.is_empty() {
            continue;
        }
        if option.matches('=').count() > 1 {
            return Err(format!("option {option:?} has more than one `=`"));
        }
        if let Some((_, cancels)) = FLAGS.iter().find(|(flag, _)| *flag == option) {
            parsed
                .flags
                .retain(|f| !cancels.contains(&f.as_str()) && f != option);
            parsed.flags.push(option.to_owned());
        } else if PROPAGATION.contains(&option) {
            parsed.propagation = Some(option.to_owned());
        } else if option == "bind" || option == "rbind" {
            parsed.bind = Some(parsed.bind.unwrap_or(false) || option == "rbind");
        } else if let Some((key, value)) = option.split_once('=') {
            if data_keys.contains(&key) {
                if fs_type == "tmpfs" {
                    check_tmpfs_value(key, value)?;
                }
                parsed.data.push(option.to_owned());
            } else if fs_type == "tmpfs" {
                return Err(format!(
                    "tmpfs does not take {key:?}; it takes {}",
                    data_keys.join(", ")
                ));
            } else {
                parsed
                    .ignored
                    .push(format!("{option:?}: {fs_type} does not take {key:?}"));
            }
        } else if data_words.contains(&option) || (fs_type == "cgroup" && is_word(option)) {
            // cgroup v1 takes controller names (`cpu`, `memory`) as bare words.
            parsed.data.push(option.to_owned());
        } else {
            parsed
                .ignored
                .push(format!("{option:?}: unknown mount option"));
        }
    }
    parsed
        .flags
        .retain(|f| !DEFAULT_FLAGS.contains(&f.as_str()));
    Ok(parsed)
}

fn is_word(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// tmpfs values the kernel would refuse at mount time are refused at plan time.
fn check_tmpfs_value(key: &str, value: &str) -> Result<(), String> {
    let ok = match key {
        "mode" => {
            !value.is_empty()
                && value.len() <= 5
                && value.bytes().all(|b| (b'0'..=b'7').contains(&b))
        }
        "uid" | "gid" => value.parse::<u32>().is_ok(),
        "size" | "nr_blocks" | "nr_inodes" => {
            let digits = value.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G', '%']);
            !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && value.len() - digits.len() <= 1
        }
        "huge" => ["never", "always", "within_size", "advise", "deny", "force"].contains(&value),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("tmpfs {key}={value:?} is not a valid value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn flags_keep_order_and_later_opposites_win() {
        let parsed = parse(
            "proc",
            &opts(&[
                "nosuid", "noexec", "nodev", "ro", "rw", "noatime", "relatime",
            ]),
        )
        .unwrap();
        assert_eq!(parsed.flags, ["nosuid", "noexec", "nodev", "relatime"]);
        let parsed = parse("tmpfs", &opts(&["noexec", "exec", "rw"])).unwrap();
        assert!(parsed.flags.is_empty());
    }

    #[test]
    fn propagation_and_bind_are_recognised() {
        let parsed = parse("bind", &opts(&["rbind", "rprivate", "ro", "slave"])).unwrap();
        assert_eq!(parsed.bind, Some(true));
        assert_eq!(parsed.propagation.as_deref(), Some("slave"));
        assert_eq!(parse("none", &opts(&["bind"])).unwrap().bind, Some(false));
    }

    #[test]
    fn filesystem_data_goes_where_the_filesystem_takes_it() {
        let tmpfs = parse(
            "tmpfs",
            &opts(&[
                "mode=1777",
                "size=64m",
                "uid=0",
                "gid=0",
                "nr_inodes=4k",
                "huge=never",
            ]),
        )
        .unwrap();
        assert_eq!(tmpfs.data.len(), 6);
        let devpts = parse(
            "devpts",
            &opts(&["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
        )
        .unwrap();
        assert_eq!(
            devpts.data,
            ["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]
        );
        let proc = parse("proc", &opts(&["hidepid=2", "subset=pid"])).unwrap();
        assert_eq!(proc.data, ["hidepid=2", "subset=pid"]);
        let cgroup = parse("cgroup", &opts(&["cpu", "cpuacct"])).unwrap();
        assert_eq!(cgroup.data, ["cpu", "cpuacct"]);
    }

    #[test]
    fn bad_options_are_errors_or_ignored() {
        assert!(
            parse("tmpfs", &opts(&["foo=bar"]))
                .unwrap_err()
                .contains("tmpfs does not take \"foo\"")
        );
        assert!(
            parse("tmpfs", &opts(&["size=lots"]))
                .unwrap_err()
                .contains("size")
        );
        assert!(parse("tmpfs", &opts(&["mode=0999"])).is_err());
        assert!(
            parse("proc", &opts(&["a=b=c"]))
                .unwrap_err()
                .contains("more than one")
        );
        let parsed = parse("sysfs", &opts(&["frobnicate", "foo=bar"])).unwrap();
        assert_eq!(parsed.ignored.len(), 2);
        assert!(parsed.data.is_empty() && parsed.flags.is_empty());
    }
}
