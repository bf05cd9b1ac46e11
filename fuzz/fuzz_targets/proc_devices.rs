//! `/proc/devices`: the parser never panics, and what it reads, written back as the kernel
//! writes it, reads the same.
#![no_main]

use std::path::Path;

use accelgate::pci::ProcDevices;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let path = Path::new("/proc/devices");
    let Ok(devices) = ProcDevices::parse(text, path) else {
        return;
    };
    let mut written = String::from("Character devices:\n");
    for (major, name) in devices.char_majors() {
        written.push_str(&format!("{major:>3} {name}\n"));
    }
    written.push_str("\nBlock devices:\n");
    for (major, name) in devices.block_majors() {
        written.push_str(&format!("{major:>3} {name}\n"));
    }
    let again = ProcDevices::parse(&written, path).expect("a written /proc/devices parses");
    assert_eq!(again, devices, "round trip of\n{written}");
    for (major, name) in devices.char_majors() {
        // The first entry under a name is the one lookups find.
        let first = devices
            .char_majors()
            .find(|(_, n)| *n == name)
            .map(|(m, _)| m);
        assert_eq!(devices.char_major(name), first, "{major} {name}");
    }
});
