//! NVIDIA's deep copies (`RM_CONTROL`, `RM_ALLOC`, `CARD_INFO`, `ATTACH_GPUS_TO_FD`) on
//! arbitrary workload memory, for every version of the tree and any capabilities: the
//! translator never panics; what it hands the driver is self-consistent (the argument at least
//! as large as the request says, `RM_CONTROL`'s parameters and every embedded buffer staged at
//! the sizes the staged counts give, so the driver stays inside the gate's buffers); a command
//! or class the version's table does not enable never reaches the driver and is answered with
//! RM's status; and the driver's answers (arbitrary bytes here) are copied out without panics.
#![no_main]

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use accelgate::boot::{NvidiaTables, families};
use accelgate::family::{
    Action, Driver, FakeMemory, Grant, Memory, Staging, Translation, field_u32, field_u64, ioc_nr,
    ioc_size,
};
use accelgate::nvproxy::DriverCaps;
use accelgate::nvproxy::policy::{CTL, GPU};
use accelgate::nvproxy::table::{Abi, Layout};
use accelgate::nvproxy::tree::{TREE, abi};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use nix::errno::Errno;

/// Where the fake workload memory starts.
const BASE: u64 = 0x7f00_0000_0000;

#[derive(Debug, Arbitrary)]
struct Input {
    version: u8,
    caps: u16,
    on_gpu_file: bool,
    /// Which translated row of the family.
    row: u16,
    /// The workload's memory; the argument sits at its start.
    memory: Vec<u8>,
    /// Fields written into the argument struct: (offset, value).
    fields: Vec<(u8, u64)>,
    /// What the driver writes back, byte by byte, over what it got.
    answer: Vec<u8>,
    /// The driver's return value.
    value: i32,
    /// GPU ids the gate learned, and which device minors are granted.
    learned: Vec<(u32, u8)>,
    granted: Vec<u8>,
}

struct CheckingDriver<'a> {
    abi: &'static Abi,
    caps: DriverCaps,
    answer: &'a [u8],
    value: i32,
    calls: usize,
}

impl Driver for CheckingDriver<'_> {
    fn ioctl(&mut self, request: u32, staging: &Staging) -> Result<i64, Errno> {
        self.calls += 1;
        let (top, length) = staging.top().expect("a staged argument");
        assert!(
            length >= ioc_size(request),
            "the argument is shorter than the request says"
        );
        let arg = staging.get(0).unwrap();
        let within = |address: u64, size: usize| size == 0 || staging.read(address, size).is_ok();
        if ioc_nr(request) == 0x2a {
            let cmd = field_u32(&arg, 8).unwrap();
            let control = self.abi.control(cmd, self.caps);
            assert!(
                control.is_some() || cmd & 0x8000 != 0,
                "a command the table does not enable reached the driver: {cmd:#x}"
            );
            let params = field_u64(&arg, 16).unwrap();
            let size = field_u32(&arg, 24).unwrap() as usize;
            assert!(
                within(params, size),
                "the parameters are not staged at their size"
            );
            if let Some(Layout::Pointers(pointers)) = control.map(|c| c.layout) {
                let staged = staging.read(params, size).unwrap();
                for pointer in pointers {
                    let at = field_u64(&staged, pointer.offset).unwrap();
                    let count = field_u32(&staged, pointer.count).unwrap() as usize;
                    if at != 0 {
                        assert!(
                            within(at, count * pointer.unit as usize),
                            "an embedded buffer is not staged at its size"
                        );
                    }
                }
            }
        }
        if ioc_nr(request) == 0x2b {
            let class = field_u32(&arg, 12).unwrap();
            assert!(
                self.abi.class(class, self.caps).is_some(),
                "a class the table does not enable reached the driver: {class:#x}"
            );
        }
        // The driver's answer: arbitrary bytes over the argument.
        let mut written = arg.clone();
        for (byte, answer) in written.iter_mut().zip(self.answer) {
            *byte = *answer;
        }
        // Its pointers stay the gate's: a driver writes results, not addresses.
        for offset in [16usize, 24] {
            if offset + 8 <= arg.len() {
                written[offset..offset + 8].copy_from_slice(&arg[offset..offset + 8]);
            }
        }
        staging.write(top, &written).unwrap();
        Ok(i64::from(self.value))
    }
}

fuzz_target!(|input: Input| {
    let node = &TREE[usize::from(input.version) % TREE.len()];
    let abi = abi(node.version).expect("every node folds");
    let caps = DriverCaps::from_names(
        &DriverCaps::NAMED
            .iter()
            .enumerate()
            .filter(|(i, _)| input.caps & (1 << i) != 0)
            .map(|(_, (name, _))| *name)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let tables = NvidiaTables { abi, caps };
    let nvidia = families(Some(tables))
        .into_iter()
        .find(|f| f.name == "nvidia")
        .unwrap();
    let kind = if input.on_gpu_file { GPU } else { CTL };
    let rows: Vec<_> = nvidia
        .requests
        .iter()
        .filter(|r| r.kind == kind && matches!(r.action, Action::Translate(_)))
        .collect();
    if rows.is_empty() {
        return;
    }
    let row = rows[usize::from(input.row) % rows.len()];
    let Action::Translate(translator) = row.action else {
        unreachable!()
    };
    let mut bytes = input.memory;
    bytes.resize(bytes.len().max(row.ioctl.arg_size), 0);
    for (offset, value) in input.fields {
        let at = usize::from(offset);
        if at + 8 <= row.ioctl.arg_size {
            // Pointers near the memory, or anywhere.
            let value = if value & 1 == 0 {
                BASE + (value >> 1) % 4096
            } else {
                value
            };
            bytes[at..at + 8].copy_from_slice(&value.to_ne_bytes());
        }
    }
    let memory = FakeMemory {
        base: BASE,
        bytes: RefCell::new(bytes),
    };
    let granted: HashSet<(u32, u32)> = input.granted.iter().map(|m| (195, u32::from(*m))).collect();
    let ids = Mutex::new(
        input
            .learned
            .iter()
            .map(|(id, minor)| (*id, (195, u32::from(*minor))))
            .collect::<HashMap<_, _>>(),
    );
    let grant = Grant {
        devices: Some(&granted),
        ids: &ids,
    };
    let no_dup = |_: i32| Err(Errno::EBADF);
    let call = Translation {
        kind,
        request: row.ioctl.request,
        arg: BASE,
        memory: &memory,
        grant: &grant,
        dup_fd: &no_dup,
    };
    let _ = translator.inspect(&call);
    let mut driver = CheckingDriver {
        abi,
        caps,
        answer: &input.answer,
        value: input.value,
        calls: 0,
    };
    if let Ok(done) = translator.run(&call, &mut driver) {
        if done.inspection.refusal.is_some() {
            assert_eq!(driver.calls, 0, "a refused call reached the driver");
            assert_eq!(done.value, 0);
        }
    }
    // Reading the memory after the copy-out never panics either.
    let _ = memory.read(BASE, 8);
});
