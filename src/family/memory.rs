//! The workload's memory as a backend sees it: read and write through the gate (the real
//! thread's memory) or through a buffer (unit tests of the simulators).

use nix::errno::Errno;

/// Reading and writing the memory of the thread that made the call.
pub trait Memory {
    /// `len` bytes at `addr`; EFAULT when unmapped, ESRCH when the call is no longer pending.
    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno>;
    /// Writes `data` at `addr`.
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Errno>;

    /// Copies an emulated call's result out: only the runs of bytes where `after` differs from
    /// `before` (the copy that went in), so that a call that returns nothing writes nothing (its
    /// argument may be read-only) and bytes other threads changed meanwhile are left alone.
    fn write_changes(&self, addr: u64, before: &[u8], after: &[u8]) -> Result<(), Errno> {
        let mut at = 0;
        while at < after.len() {
            if before.get(at) == Some(&after[at]) {
                at += 1;
                continue;
            }
            let start = at;
            while at < after.len() && before.get(at) != Some(&after[at]) {
                at += 1;
            }
            self.write(addr + start as u64, &after[start..at])?;
        }
        Ok(())
    }

    /// A NUL-terminated string of at most `max` bytes (without the NUL).
    fn read_cstr(&self, addr: u64, max: usize) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < max {
            // Read up to the end of the page, so that a string ending before an unmapped page works.
            let chunk = (4096 - (at % 4096) as usize).min(max - out.len());
            let bytes = self.read(at, chunk)?;
            if let Some(end) = bytes.iter().position(|b| *b == 0) {
                out.extend_from_slice(&bytes[..end]);
                return Ok(out);
            }
            out.extend_from_slice(&bytes);
            at += chunk as u64;
        }
        Err(Errno::ENAMETOOLONG)
    }
}

/// Memory backed by a buffer: unit tests of simulators and policies, and the fuzzers.
pub struct FakeMemory {
    /// Base address of `bytes`.
    pub base: u64,
    /// Contents.
    pub bytes: std::cell::RefCell<Vec<u8>>,
}

impl Memory for FakeMemory {
    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
        let start = addr.checked_sub(self.base).ok_or(Errno::EFAULT)? as usize;
        self.bytes
            .borrow()
            .get(start..start + len)
            .map(<[u8]>::to_vec)
            .ok_or(Errno::EFAULT)
    }

    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        let start = addr.checked_sub(self.base).ok_or(Errno::EFAULT)? as usize;
        let mut bytes = self.bytes.borrow_mut();
        bytes
            .get_mut(start..start + data.len())
            .ok_or(Errno::EFAULT)?
            .copy_from_slice(data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// Memory that records every write and refuses none.
    struct Writes(RefCell<Vec<(u64, Vec<u8>)>>);

    impl Memory for Writes {
        fn read(&self, _: u64, _: usize) -> Result<Vec<u8>, Errno> {
            Err(Errno::EFAULT)
        }

        fn write(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
            self.0.borrow_mut().push((addr, data.to_vec()));
            Ok(())
        }
    }

    #[test]
    fn only_changed_runs_are_copied_out() {
        let memory = Writes(RefCell::new(Vec::new()));
        memory
            .write_changes(0x100, &[1, 2, 3, 4, 5, 6], &[1, 9, 9, 4, 5, 7])
            .unwrap();
        assert_eq!(
            memory.0.into_inner(),
            [(0x101, vec![9, 9]), (0x105, vec![7])]
        );

        let unchanged = Writes(RefCell::new(Vec::new()));
        unchanged.write_changes(0x100, &[1, 2], &[1, 2]).unwrap();
        assert!(
            unchanged.0.into_inner().is_empty(),
            "a call that returns nothing writes nothing"
        );
    }
}
