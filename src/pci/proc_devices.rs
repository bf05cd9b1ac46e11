use std::path::Path;

use super::PciError;

/// The driver majors of `/proc/devices`: which driver owns which major number.
///
/// Dynamic majors (nvidia-uvm, nvidia-caps, vfio) differ between hosts and between driver
/// loads, so they are read here at discovery time and never trusted from elsewhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcDevices {
    char: Vec<(u32, String)>,
    block: Vec<(u32, String)>,
}

impl ProcDevices {
    /// Parses the text of `/proc/devices`; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, PciError> {
        let mut devices = Self::default();
        let mut section = None;
        for line in text.lines() {
            let trimmed = line.trim();
            match trimmed {
                "" => continue,
                "Character devices:" => section = Some(&mut devices.char),
                "Block devices:" => section = Some(&mut devices.block),
                _ => {
                    let invalid = |reason| PciError::Invalid {
                        path: path.to_path_buf(),
                        value: line.to_owned(),
                        reason,
                    };
                    let list = section
                        .as_deref_mut()
                        .ok_or_else(|| invalid("entry before a section header"))?;
                    let (major, name) = trimmed
                        .split_once(char::is_whitespace)
                        .ok_or_else(|| invalid("not `MAJOR NAME`"))?;
                    let major = super::attr::parse_decimal_u32(major)
                        .map_err(|_| invalid("major is not a number"))?;
                    list.push((major, name.trim().to_owned()));
                }
            }
        }
        Ok(devices)
    }

    /// The character major registered under `name`.
    pub fn char_major(&self, name: &str) -> Option<u32> {
        self.char
            .iter()
            .find(|(_, n)| n == name)
            .map(|(major, _)| *major)
    }

    /// Every character major with its driver name, in file order.
    pub fn char_majors(&self) -> impl Iterator<Item = (u32, &str)> {
        self.char
            .iter()
            .map(|(major, name)| (*major, name.as_str()))
    }

    /// Every block major with its driver name, in file order.
    pub fn block_majors(&self) -> impl Iterator<Item = (u32, &str)> {
        self.block
            .iter()
            .map(|(major, name)| (*major, name.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Character devices:\n  1 mem\n  4 /dev/vc/0\n 10 misc\n121 accel\n\
                          195 nvidia-frontend\n245 vfio\n510 nvidia-uvm\n\nBlock devices:\n  7 loop\n\
                          121 accel_block\n";

    #[test]
    fn finds_char_and_block_majors() {
        let devices = ProcDevices::parse(SAMPLE, Path::new("/proc/devices")).unwrap();
        assert_eq!(devices.char_major("nvidia-uvm"), Some(510));
        assert_eq!(devices.char_major("vfio"), Some(245));
        assert_eq!(devices.char_major("/dev/vc/0"), Some(4));
        assert_eq!(devices.char_major("loop"), None);
        assert_eq!(
            devices.block_majors().collect::<Vec<_>>(),
            [(7, "loop"), (121, "accel_block")]
        );
        assert_eq!(devices.char_majors().count(), 7);
    }

    #[test]
    fn rejects_malformed_lines() {
        for text in [
            "1 mem\n",
            "Character devices:\nmem\n",
            "Character devices:\nx mem\n",
        ] {
            let err = ProcDevices::parse(text, Path::new("/proc/devices")).unwrap_err();
            assert!(err.to_string().contains("/proc/devices"), "{err}");
        }
    }
}
