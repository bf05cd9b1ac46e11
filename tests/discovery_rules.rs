//! Discovery rules that the committed fixtures do not cover, on hosts built per test.

use std::path::Path;

use accelgate::discovery::{Discovery, discover};
use accelgate::fixture::{HostBuilder, PciFunction};
use accelgate::pci::{Bdf, HostRoot, NodeKind};
use accelgate::vfs::DeviceClass;

fn bdf(text: &str) -> Bdf {
    Bdf::parse(text).unwrap()
}

fn build(edit: impl FnOnce(&mut HostBuilder)) -> (tempfile::TempDir, Discovery) {
    let dir = tempfile::tempdir().unwrap();
    let mut builder = HostBuilder::new(dir.path()).unwrap();
    edit(&mut builder);
    builder.finish().unwrap();
    let found = discover(&HostRoot::at(dir.path()).unwrap()).unwrap();
    (dir, found)
}

fn vfio_tpu(b: &mut HostBuilder, at: &str, device: u16, group: u32, minor: u32) {
    b.pci(
        &PciFunction::new(bdf(at), 0x1ae0, device, 0x120000)
            .numa(0)
            .driver("vfio-pci")
            .group(group),
    )
    .unwrap();
    b.vfio_group(group, 245, minor).unwrap();
}

fn nvidia_base(b: &mut HostBuilder) {
    b.char_major(195, "nvidia-frontend")
        .char_major(510, "nvidia-uvm");
    b.pci(
        &PciFunction::new(bdf("0000:1b:00.0"), 0x10de, 0x2330, 0x030200)
            .numa(0)
            .driver("nvidia"),
    )
    .unwrap();
    b.nvidia_gpu(bdf("0000:1b:00.0"), "NVIDIA H100 80GB HBM3", "GPU-1", 0)
        .unwrap();
    b.node("/dev/nvidia0", NodeKind::Char, 195, 0, 0o666).node(
        "/dev/nvidiactl",
        NodeKind::Char,
        195,
        255,
        0o666,
    );
}

fn messages(found: &Discovery) -> Vec<&str> {
    found.warnings.iter().map(|w| w.message.as_str()).collect()
}

#[test]
fn a_v6e_physical_function_serving_vfs_is_not_a_chip() {
    let (_dir, found) = build(|b| {
        b.char_major(245, "vfio").vfio_container().unwrap();
        b.pci(
            &PciFunction::new(bdf("0000:00:04.0"), 0x1ae0, 0x006e, 0x120000)
                .numa(0)
                .driver("tpu_pf"),
        )
        .unwrap();
        vfio_tpu(b, "0000:00:04.1", 0x006f, 0, 1);
        vfio_tpu(b, "0000:00:04.2", 0x006f, 1, 0);
        b.virtfn(bdf("0000:00:04.0"), bdf("0000:00:04.1"), 0)
            .unwrap();
        b.virtfn(bdf("0000:00:04.0"), bdf("0000:00:04.2"), 1)
            .unwrap();
    });
    let bdfs: Vec<String> = found.tpus.iter().map(|c| c.bdfs[0].to_string()).collect();
    assert_eq!(bdfs, ["0000:00:04.1", "0000:00:04.2"]);
    assert!(found.unsupported.is_empty(), "{:?}", found.unsupported);
    let pf = found.pci.get(bdf("0000:00:04.0")).unwrap();
    assert_eq!(pf.virtfns, [bdf("0000:00:04.1"), bdf("0000:00:04.2")]);
    assert_eq!(
        found.pci.get(bdf("0000:00:04.2")).unwrap().physfn,
        Some(bdf("0000:00:04.0"))
    );
}

#[test]
fn a_stale_uvm_major_is_a_warning_naming_both_numbers() {
    let (_dir, found) = build(|b| {
        nvidia_base(b);
        b.node("/dev/nvidia-uvm", NodeKind::Char, 235, 0, 0o666);
    });
    let warning = found
        .warnings
        .iter()
        .find(|w| w.path == Path::new("/dev/nvidia-uvm"))
        .unwrap();
    assert!(
        warning.message.contains("235") && warning.message.contains("510"),
        "{}",
        warning.message
    );
    assert_eq!(
        found.nvidia.unwrap().nodes.len(),
        2,
        "the node is kept, with its warning"
    );
}

#[test]
fn a_gpu_the_driver_does_not_manage_is_unsupported() {
    let (_dir, found) = build(|b| {
        nvidia_base(b);
        b.pci(
            &PciFunction::new(bdf("0000:43:00.0"), 0x10de, 0x2330, 0x030200)
                .driver("vfio-pci")
                .group(7),
        )
        .unwrap();
    });
    assert_eq!(found.gpus.len(), 1);
    assert_eq!(found.unsupported.len(), 1);
    assert!(
        found.unsupported[0].reason.contains("bound to vfio-pci"),
        "{}",
        found.unsupported[0].reason
    );
}

#[test]
fn without_a_driver_gpus_are_unsupported_and_nvidia_is_null() {
    let (_dir, found) = build(|b| {
        b.pci(&PciFunction::new(
            bdf("0000:1b:00.0"),
            0x10de,
            0x2330,
            0x030200,
        ))
        .unwrap();
    });
    assert!(found.nvidia.is_none() && found.gpus.is_empty());
    assert!(
        found.unsupported[0]
            .reason
            .contains("not bound to a driver")
    );
}

#[test]
fn the_version_falls_back_to_sys_module_and_reads_the_proprietary_line() {
    let (dir, found) = build(|b| {
        nvidia_base(b);
        b.write("module/nvidia/version", "535.104.05\n").unwrap();
    });
    assert_eq!(
        found.nvidia.unwrap().driver_version.unwrap().to_string(),
        "535.104.05"
    );
    std::fs::create_dir_all(dir.path().join("proc/driver/nvidia")).unwrap();
    std::fs::write(
        dir.path().join("proc/driver/nvidia/version"),
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.90.07  Fri May 31 09:35:42 UTC 2024\n",
    )
    .unwrap();
    let found = discover(&HostRoot::at(dir.path()).unwrap()).unwrap();
    assert_eq!(
        found.nvidia.unwrap().driver_version.unwrap().to_string(),
        "550.90.07"
    );
}

#[test]
fn an_unclaimed_gpu_node_is_a_warning() {
    let (_dir, found) = build(|b| {
        nvidia_base(b);
        b.node("/dev/nvidia8", NodeKind::Char, 195, 8, 0o666);
    });
    assert!(
        messages(&found)
            .iter()
            .any(|m| m.starts_with("/dev/nvidia8: no NVIDIA GPU has minor 8")),
        "{:?}",
        messages(&found)
    );
}

#[test]
fn the_short_frontend_name_in_proc_devices_is_understood() {
    let (_dir, found) = build(|b| {
        b.char_major(195, "nvidia");
        b.pci(&PciFunction::new(bdf("0000:1b:00.0"), 0x10de, 0x20b0, 0x030200).driver("nvidia"))
            .unwrap();
        b.nvidia_gpu(bdf("0000:1b:00.0"), "NVIDIA A100-SXM4-40GB", "GPU-2", 0)
            .unwrap();
        b.node("/dev/nvidia0", NodeKind::Char, 195, 0, 0o666).node(
            "/dev/nvidiactl",
            NodeKind::Char,
            195,
            255,
            0o666,
        );
    });
    assert!(
        found
            .warnings
            .iter()
            .all(|w| !w.message.contains("disagrees")),
        "{:?}",
        messages(&found)
    );
    assert_eq!(
        found.gpus[0].model.as_deref(),
        Some("NVIDIA A100-SXM4-40GB")
    );
}

#[test]
fn a_missing_group_node_keeps_the_chip_and_warns() {
    let (_dir, found) = build(|b| {
        b.char_major(245, "vfio").vfio_container().unwrap();
        vfio_tpu(b, "0000:00:04.0", 0x0063, 0, 0);
        b.remove_node("/dev/vfio/0");
    });
    assert_eq!(found.tpus.len(), 1);
    assert!(found.tpus[0].nodes.is_empty());
    assert!(
        messages(&found)
            .iter()
            .any(|m| m.starts_with("/dev/vfio/0: no device node")),
        "{:?}",
        messages(&found)
    );
}

#[test]
fn a_group_node_on_the_wrong_major_is_a_warning() {
    let (_dir, found) = build(|b| {
        b.char_major(245, "vfio").vfio_container().unwrap();
        vfio_tpu(b, "0000:00:04.0", 0x0063, 0, 0);
        b.node("/dev/vfio/0", NodeKind::Char, 240, 0, 0o666);
    });
    let m = messages(&found);
    assert!(
        m.iter()
            .any(|m| m.contains("major 240") && m.contains("/proc/devices vfio major 245")),
        "{m:?}"
    );
}

#[test]
fn a_vfio_tpu_without_the_container_node_warns() {
    let (_dir, found) = build(|b| {
        b.char_major(245, "vfio");
        vfio_tpu(b, "0000:00:04.0", 0x0063, 0, 0);
    });
    assert!(found.vfio.is_none());
    assert!(
        messages(&found)
            .iter()
            .any(|m| m.starts_with("/dev/vfio/vfio: no device node"))
    );
}

#[test]
fn accel_chips_are_indexed_by_bdf_and_keep_their_own_nodes() {
    let (_dir, found) = build(|b| {
        b.char_major(121, "accel");
        for at in ["0000:00:04.0", "0000:00:05.0"] {
            b.pci(&PciFunction::new(bdf(at), 0x1ae0, 0x005e, 0x120000).numa(0))
                .unwrap();
        }
        // Probe order gave the second slot accel0.
        b.accel(bdf("0000:00:05.0"), 0, 121, 0).unwrap();
        b.accel(bdf("0000:00:04.0"), 1, 121, 1).unwrap();
        b.node("/dev/accel0", NodeKind::Char, 121, 7, 0o666);
    });
    assert_eq!(found.tpus[0].bdfs[0].to_string(), "0000:00:04.0");
    assert_eq!(found.tpus[0].nodes[0].path, Path::new("/dev/accel1"));
    let m = messages(&found);
    assert!(
        m.iter()
            .any(|m| m.starts_with("/dev/accel0: numbers 121:7 disagree")),
        "{m:?}"
    );
}

#[test]
fn a_v4_without_an_accel_entry_is_unsupported() {
    let (_dir, found) = build(|b| {
        b.pci(&PciFunction::new(
            bdf("0000:00:04.0"),
            0x1ae0,
            0x005e,
            0x120000,
        ))
        .unwrap();
    });
    assert!(found.tpus.is_empty());
    assert!(
        found.unsupported[0]
            .reason
            .contains("no /sys/class/accel device")
    );
}

#[test]
fn tpu_v2v3_is_known_but_unsupported() {
    let (_dir, found) = build(|b| {
        b.pci(&PciFunction::new(
            bdf("0000:00:04.0"),
            0x1ae0,
            0x0027,
            0x120000,
        ))
        .unwrap();
    });
    assert!(
        found.unsupported[0].reason.contains("v2v3"),
        "{}",
        found.unsupported[0].reason
    );
    assert!(found.warnings.is_empty());
}

#[test]
fn a_host_without_pci_is_empty_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sys")).unwrap();
    let found = discover(&HostRoot::at(dir.path()).unwrap()).unwrap();
    assert!(found.tpus.is_empty() && found.gpus.is_empty() && found.warnings.is_empty());
}

#[test]
fn an_entry_that_is_not_a_bdf_is_skipped_with_a_warning() {
    let (_dir, found) = build(|b| {
        vfio_tpu(b, "0000:00:04.0", 0x0063, 0, 0);
        b.raw_link(
            "bus/pci/devices/0000:00:04.0z",
            "../../../devices/pci0000:00/0000:00:04.0",
        )
        .unwrap();
    });
    assert_eq!(found.pci.devices.len(), 1);
    assert!(
        messages(&found).iter().any(|m| m.contains("0000:00:04.0z")),
        "{:?}",
        messages(&found)
    );
}

#[test]
fn the_registry_holds_standard_and_discovered_nodes_and_reserves_host_majors() {
    let (_dir, found) = build(|b| {
        nvidia_base(b);
        b.node("/dev/nvidia-uvm", NodeKind::Char, 510, 0, 0o666);
        b.char_major(245, "vfio").vfio_container().unwrap();
        vfio_tpu(b, "0000:00:04.0", 0x0063, 0, 3);
    });
    let mut registry = found.registry().unwrap();
    for (major, minor, class) in [
        (1, 3, DeviceClass::Null),
        (245, 3, DeviceClass::VfioGroup),
        (10, 196, DeviceClass::VfioContainer),
        (195, 0, DeviceClass::NvidiaGpu),
        (195, 255, DeviceClass::NvidiaCtl),
        (510, 0, DeviceClass::NvidiaUvm),
    ] {
        let entry = registry.lookup(NodeKind::Char, major, minor);
        assert_eq!(entry.map(|e| e.class), Some(class), "{major}:{minor}");
    }
    // The builder's base host uses 254..252 (gpiochip, dax, rtc): the first free one is 251.
    assert_eq!(registry.dynamic_char_major().unwrap(), 251);
}
