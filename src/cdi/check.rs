//! Specs on disk against the host: every entry that no longer matches.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Kind;
use super::generate::generate;
use super::nodes::host_device_nodes;
use super::spec::{DeviceNode, Spec};
use super::version::minimum_version;
use crate::discovery::Discovery;
use crate::pci::HostRoot;

/// One entry of a spec on disk that no longer matches the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stale {
    /// The spec file; `None` when what is stale is a spec that is missing.
    pub file: Option<PathBuf>,
    /// JSON field path in the file (`devices[2].containerEdits.deviceNodes[0].major`);
    /// empty when the problem is not one field's.
    pub field: String,
    /// What is wrong, naming the spec's value and the host's.
    pub problem: String,
}

impl fmt::Display for Stale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.problem)
    }
}

/// What [`check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The `nvidia.com/gpu` and `google.com/tpu` spec files compared with the host.
    pub checked: Vec<PathBuf>,
    /// YAML spec files, which are not read (engines read them; accelgate writes JSON).
    pub not_read: Vec<PathBuf>,
    /// Every stale entry; empty when the specs are current.
    pub stale: Vec<Stale>,
}

/// Compares the `*.json` specs in `dirs` (missing directories are skipped) with what
/// [`generate`] gives for the host now.
///
/// Stale are: a file that does not parse (named with the JSON field path); a device the host
/// no longer has; a device node whose type, major, minor or host path changed (a reloaded
/// driver's dynamic major) or that is gone; a device or node of the host that no spec has;
/// a kind the host has with no spec at all; and a `cdiVersion` below what the file's fields
/// need. Specs of other kinds are left alone, and so are env, mounts and hooks: specs from
/// other tools (`nvidia-ctk`'s library mounts and hooks) can be checked too.
pub fn check(dirs: &[PathBuf], discovery: &Discovery, host: &HostRoot) -> CheckReport {
    let expected: BTreeMap<Kind, Spec> = Kind::ALL
        .into_iter()
        .filter_map(|kind| Some((kind, generate(discovery, host, kind).ok()?)))
        .collect();
    let host_nodes = host_device_nodes(discovery, host);
    let mut report = CheckReport::default();
    let mut files_of: BTreeMap<Kind, Vec<PathBuf>> = BTreeMap::new();
    let mut names_of: BTreeMap<Kind, BTreeSet<String>> = BTreeMap::new();

    for file in spec_files(dirs, &mut report) {
        let Some(spec) = parse(&file, &mut report.stale) else {
            continue;
        };
        let Some(kind) = Kind::from_name(&spec.kind) else {
            continue;
        };
        let mut comparison = Comparison {
            file: &file,
            kind,
            host_nodes: &host_nodes,
            stale: &mut report.stale,
        };
        comparison.spec(&spec, expected.get(&kind));
        names_of
            .entry(kind)
            .or_default()
            .extend(spec.devices.iter().map(|d| d.name.clone()));
        files_of.entry(kind).or_default().push(file.clone());
        report.checked.push(file);
    }

    for (kind, spec) in &expected {
        let Some(files) = files_of.get(kind) else {
            let listed: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            report.stale.push(Stale {
                file: None,
                field: String::new(),
                problem: format!(
                    "{kind}: the host has {} but no spec in {}",
                    kind.devices(),
                    listed.join(", ")
                ),
            });
            continue;
        };
        let names = &names_of[kind];
        for device in spec.devices.iter().filter(|d| !names.contains(&d.name)) {
            report.stale.push(Stale {
                file: (files.len() == 1).then(|| files[0].clone()),
                field: "devices".into(),
                problem: format!("{kind}={}: on the host but in no spec", device.name),
            });
        }
    }
    report
}

/// The spec files of `dirs` in engine order (directory by directory, by name).
fn spec_files(dirs: &[PathBuf], report: &mut CheckReport) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in dirs {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                report.stale.push(unreadable(dir, &e));
                continue;
            }
        };
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for path in names {
            match path.extension().and_then(|e| e.to_str()) {
                Some("json") => files.push(path),
                Some("yaml" | "yml") => report.not_read.push(path),
                _ => {}
            }
        }
    }
    files
}

fn unreadable(path: &Path, error: &io::Error) -> Stale {
    Stale {
        file: Some(path.to_path_buf()),
        field: String::new(),
        problem: format!("cannot be read: {error}"),
    }
}

/// The spec in `file`, or `None` with a stale entry naming the field that does not parse.
fn parse(file: &Path, stale: &mut Vec<Stale>) -> Option<Spec> {
    let bytes = match fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) => {
            stale.push(unreadable(file, &e));
            return None;
        }
    };
    let mut json = serde_json::Deserializer::from_slice(&bytes);
    // `end` refuses what follows the spec: engines parse the whole file and reject the rest.
    match serde_path_to_error::deserialize::<_, Spec>(&mut json) {
        Ok(spec) => match json.end() {
            Ok(()) => Some(spec),
            Err(e) => {
                stale.push(Stale {
                    file: Some(file.to_path_buf()),
                    field: String::new(),
                    problem: format!("not a CDI spec: {e}"),
                });
                None
            }
        },
        Err(e) => {
            stale.push(Stale {
                file: Some(file.to_path_buf()),
                field: e.path().to_string(),
                problem: format!("not a CDI spec: {}", e.inner()),
            });
            None
        }
    }
}

/// One spec file of one of our kinds against the host.
struct Comparison<'a> {
    file: &'a Path,
    kind: Kind,
    host_nodes: &'a [DeviceNode],
    stale: &'a mut Vec<Stale>,
}

impl Comparison<'_> {
    fn push(&mut self, field: String, problem: String) {
        self.stale.push(Stale {
            file: Some(self.file.to_path_buf()),
            field,
            problem,
        });
    }

    fn spec(&mut self, spec: &Spec, expected: Option<&Spec>) {
        let needed = minimum_version(spec);
        if version_tuple(&spec.cdi_version) < version_tuple(needed) {
            self.push(
                "cdiVersion".into(),
                format!(
                    "{} is below {needed}, which the spec's fields need; engines refuse it",
                    spec.cdi_version
                ),
            );
        }
        for (i, device) in spec.devices.iter().enumerate() {
            let label = format!("{}={}", self.kind, device.name);
            let host_device =
                expected.and_then(|e| e.devices.iter().find(|d| d.name == device.name));
            match host_device {
                Some(host_device) => self.nodes(
                    &format!("devices[{i}].containerEdits"),
                    &label,
                    &device.container_edits.device_nodes,
                    &host_device.container_edits.device_nodes,
                ),
                None => self.push(
                    format!("devices[{i}].name"),
                    format!("{label}: the host has no such device"),
                ),
            }
        }
        let host_shared = expected.map_or(&[][..], |e| &e.container_edits.device_nodes[..]);
        self.nodes(
            "containerEdits",
            self.kind.name(),
            &spec.container_edits.device_nodes,
            host_shared,
        );
    }

    /// The spec's nodes against the host's, and the nodes the host gives this device that the
    /// spec lacks.
    fn nodes(&mut self, prefix: &str, label: &str, spec: &[DeviceNode], expected: &[DeviceNode]) {
        for (j, node) in spec.iter().enumerate() {
            let field = |name: &str| format!("{prefix}.deviceNodes[{j}].{name}");
            let path = node.path.display();
            let Some(host) = self.host_nodes.iter().find(|h| h.path == node.path) else {
                self.push(field("path"), format!("{label}: {path} is not on the host"));
                continue;
            };
            let differences = [
                ("type", node.node_type.clone(), host.node_type.clone()),
                (
                    "major",
                    node.major.map(|m| m.to_string()),
                    host.major.map(|m| m.to_string()),
                ),
                (
                    "minor",
                    node.minor.map(|m| m.to_string()),
                    host.minor.map(|m| m.to_string()),
                ),
            ];
            for (name, in_spec, on_host) in differences {
                // A number the spec leaves out is read from the host when a container starts.
                if let (Some(in_spec), Some(on_host)) = (in_spec, on_host) {
                    if in_spec != on_host {
                        self.push(
                            field(name),
                            format!("{label}: {path} {name} is {in_spec} in the spec, {on_host} on the host"),
                        );
                    }
                }
            }
            let (in_spec, on_host) = (node.effective_host_path(), host.effective_host_path());
            if in_spec != on_host {
                self.push(
                    field("hostPath"),
                    format!(
                        "{label}: {path} is at {} in the spec, {} on the host",
                        in_spec.display(),
                        on_host.display()
                    ),
                );
            }
        }
        for missing in expected
            .iter()
            .filter(|e| !spec.iter().any(|n| n.path == e.path))
        {
            self.push(
                format!("{prefix}.deviceNodes"),
                format!(
                    "{label}: {} ({} {}:{}) is on the host but not in the spec",
                    missing.path.display(),
                    missing.node_type.as_deref().unwrap_or("?"),
                    missing.major.unwrap_or_default(),
                    missing.minor.unwrap_or_default()
                ),
            );
        }
    }
}

/// `0.5.0` as (0, 5, 0); anything unparsable sorts first, as engines refuse it too.
fn version_tuple(version: &str) -> Option<(u32, u32, u32)> {
    let mut parts = version
        .trim_start_matches('v')
        .split('.')
        .map(str::parse::<u32>);
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c)), None) => Some((a, b, c)),
        _ => None,
    }
}
