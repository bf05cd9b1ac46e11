//! Discovery on a large synthetic host, against the cost of merely reading the same files.
//!
//! `cargo bench --bench discovery [-- --functions N --tpus N --iterations N]`
//!
//! Both measurements alternate in one process on one tree, so the ratio holds on a noisy
//! shared machine even when the absolute times do not.

use std::fs;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use accelgate::discovery::discover;
use accelgate::fixture::{SyntheticHost, write_synthetic};
use accelgate::pci::HostRoot;

/// The attributes and links discovery looks at for every function.
const ATTRIBUTES: [&str; 7] = [
    "vendor",
    "device",
    "subsystem_vendor",
    "subsystem_device",
    "class",
    "revision",
    "numa_node",
];
const LINKS: [&str; 3] = ["driver", "iommu_group", "physfn"];

/// The floor: read every file and link discovery reads, through the kernel's own path walk,
/// parsing nothing.
fn read_the_same_files(root: &Path) -> usize {
    let mut bytes = 0;
    let listing = root.join("sys/bus/pci/devices");
    for entry in fs::read_dir(&listing).unwrap() {
        let dir = entry.unwrap().path();
        for name in ATTRIBUTES {
            bytes += fs::read(dir.join(name)).map_or(0, |b| b.len());
        }
        for name in LINKS {
            bytes += fs::read_link(dir.join(name)).map_or(0, |l| l.as_os_str().len());
        }
        bytes += fs::read_dir(&dir).unwrap().count();
    }
    bytes += fs::read(root.join("proc/devices")).unwrap().len();
    bytes += fs::read(root.join("dev.list")).unwrap().len();
    bytes
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn main() {
    let shape = SyntheticHost {
        functions: arg("--functions", 4096),
        tpus: arg("--tpus", 256),
    };
    let iterations = arg("--iterations", 15);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    write_synthetic(dir.path(), shape).unwrap();
    println!(
        "synthetic host: {} functions, {} TPUs, written in {:?}",
        shape.functions,
        shape.tpus,
        started.elapsed()
    );

    let host = HostRoot::at(dir.path()).unwrap();
    let check = discover(&host).unwrap();
    assert_eq!(check.tpus.len(), shape.tpus);
    assert!(check.warnings.is_empty(), "{:?}", check.warnings.first());
    let functions = check.pci.devices.len();

    let (mut floor, mut full) = (Vec::new(), Vec::new());
    for _ in 0..iterations {
        let t = Instant::now();
        black_box(read_the_same_files(dir.path()));
        floor.push(t.elapsed());
        let t = Instant::now();
        black_box(discover(&HostRoot::at(dir.path()).unwrap()).unwrap());
        full.push(t.elapsed());
    }
    let (floor, full) = (median(floor), median(full));
    let per = |d: Duration| d / u32::try_from(functions).unwrap();
    println!("PCI functions (with bridges): {functions}, iterations: {iterations}");
    println!(
        "read the same files: median {floor:?} ({:?} per function)",
        per(floor)
    );
    println!(
        "discover:            median {full:?} ({:?} per function)",
        per(full)
    );
    println!(
        "ratio discover / read: {:.2}",
        full.as_secs_f64() / floor.as_secs_f64()
    );
}
