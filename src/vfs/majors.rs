use std::collections::{BTreeMap, BTreeSet};

use super::VfsError;

/// Dynamic character majors below 255, tried from the top: `CHRDEV_MAJOR_HASH_SIZE - 1` down to
/// `CHRDEV_MAJOR_DYN_END`.
const FIRST_SEGMENT: std::ops::RangeInclusive<u32> = 234..=254;

/// The extended segment, tried from the top: `CHRDEV_MAJOR_DYN_EXT_START` down to
/// `CHRDEV_MAJOR_DYN_EXT_END`.
const SECOND_SEGMENT: std::ops::RangeInclusive<u32> = 384..=511;

/// Character majors handed out in the order of Linux `fs/char_dev.c:find_dynamic_major()`:
/// 254 down to 234, then 511 down to 384, then exhaustion (149 in all).
///
/// Majors the host already uses are reserved and never handed out, so a sandbox-side number
/// cannot be mistaken for a host driver's.
#[derive(Debug, Clone, Default)]
pub struct DynamicMajors {
    reserved: BTreeSet<u32>,
    allocated: BTreeSet<u32>,
    keyed: BTreeMap<String, u32>,
}

impl DynamicMajors {
    /// Marks `major` as used by the host.
    pub fn reserve(&mut self, major: u32) {
        self.reserved.insert(major);
    }

    /// The next free major, as the kernel would pick it.
    pub fn allocate(&mut self) -> Result<u32, VfsError> {
        let free = FIRST_SEGMENT
            .rev()
            .chain(SECOND_SEGMENT.rev())
            .find(|m| !self.reserved.contains(m) && !self.allocated.contains(m))
            .ok_or(VfsError::MajorsExhausted)?;
        self.allocated.insert(free);
        Ok(free)
    }

    /// The major shared by every caller that passes `key` (one per device family), allocated on
    /// first use.
    pub fn shared(&mut self, key: &str) -> Result<u32, VfsError> {
        if let Some(major) = self.keyed.get(key) {
            return Ok(*major);
        }
        let major = self.allocate()?;
        self.keyed.insert(key.to_owned(), major);
        Ok(major)
    }

    /// Returns a major handed out by [`allocate`](Self::allocate) or [`shared`](Self::shared).
    pub fn release(&mut self, major: u32) -> Result<(), VfsError> {
        if !self.allocated.remove(&major) {
            return Err(VfsError::NotDynamic { major });
        }
        self.keyed.retain(|_, m| *m != major);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_find_dynamic_major() {
        let mut majors = DynamicMajors::default();
        let first: Vec<u32> = (0..21).map(|_| majors.allocate().unwrap()).collect();
        assert_eq!(first, (234..=254).rev().collect::<Vec<_>>());
        assert_eq!(majors.allocate().unwrap(), 511);
        assert_eq!(majors.allocate().unwrap(), 510);
    }

    #[test]
    fn exhausts_after_149() {
        let mut majors = DynamicMajors::default();
        for _ in 0..149 {
            majors.allocate().unwrap();
        }
        assert!(matches!(majors.allocate(), Err(VfsError::MajorsExhausted)));
        majors.release(400).unwrap();
        assert_eq!(majors.allocate().unwrap(), 400);
    }

    #[test]
    fn skips_host_majors() {
        let mut majors = DynamicMajors::default();
        majors.reserve(254);
        majors.reserve(252);
        assert_eq!(majors.allocate().unwrap(), 253);
        assert_eq!(majors.allocate().unwrap(), 251);
        assert!(matches!(
            majors.release(254),
            Err(VfsError::NotDynamic { major: 254 })
        ));
    }

    #[test]
    fn keyed_majors_are_shared_until_released() {
        let mut majors = DynamicMajors::default();
        let vfio = majors.shared("vfio").unwrap();
        assert_eq!(majors.shared("vfio").unwrap(), vfio);
        let uvm = majors.shared("nvidia-uvm").unwrap();
        assert_ne!(uvm, vfio);
        majors.release(vfio).unwrap();
        assert_eq!(
            majors.shared("vfio").unwrap(),
            vfio,
            "the freed major is the highest free one"
        );
        assert!(matches!(
            majors.release(1),
            Err(VfsError::NotDynamic { major: 1 })
        ));
    }
}
