use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// An NVIDIA driver version such as `550.54.15` or `535.104.05`.
///
/// Ordered numerically. The minor and patch levels are printed with at least two digits, as
/// NVIDIA does (`620.06.00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DriverVersion {
    /// Branch, e.g. 550.
    pub major: u32,
    /// Minor release.
    pub minor: u32,
    /// Patch level; some old releases (`390.157`) have none.
    pub patch: Option<u32>,
}

impl DriverVersion {
    /// `major.minor.patch`.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch: Some(patch),
        }
    }

    /// Parses `MAJOR.MINOR[.PATCH]`.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let number = |part: Option<&str>| -> Result<u32, &'static str> {
            let part = part.ok_or("not MAJOR.MINOR[.PATCH]")?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err("not MAJOR.MINOR[.PATCH]");
            }
            part.parse().map_err(|_| "version number too large")
        };
        let mut parts = text.split('.');
        let major = number(parts.next())?;
        let minor = number(parts.next())?;
        let patch = parts.next().map(|p| number(Some(p))).transpose()?;
        if parts.next().is_some() {
            return Err("not MAJOR.MINOR[.PATCH]");
        }
        Ok(Self {
            major,
            minor,
            patch,
        })
    }
}

impl FromStr for DriverVersion {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for DriverVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.major, self.minor)?;
        match self.patch {
            Some(patch) => write!(f, ".{patch:02}"),
            None => Ok(()),
        }
    }
}

impl Serialize for DriverVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Finds the version in `/proc/driver/nvidia/version`.
///
/// Both line formats carry it as the first version-shaped word after `Kernel Module`:
/// `NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build ...` and
/// `NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Thu Feb 22 ...`.
pub fn parse_proc_version(text: &str) -> Result<DriverVersion, &'static str> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("NVRM version:"))
        .ok_or("no `NVRM version:` line")?;
    let (_, after) = line
        .split_once("Kernel Module")
        .ok_or("no `Kernel Module` in the NVRM line")?;
    after
        .split_whitespace()
        .find_map(|word| DriverVersion::parse(word).ok())
        .ok_or("no version number after `Kernel Module`")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: &str = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  \
                        Release Build  (dvs-builder@U16-I3-B03-4-3)  Tue Feb 20 21:20:25 UTC 2024\n\
                        GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n";
    const PROPRIETARY: &str = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  \
                               Sat Aug 19 01:15:15 UTC 2023\nGCC version:  gcc version 11.4.0\n";
    const ARM: &str = "NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  570.124.06  \
                       Release Build  (dvs-builder@U22)  Wed Feb 26 2025\n";

    #[test]
    fn reads_both_line_formats() {
        assert_eq!(parse_proc_version(OPEN).unwrap().to_string(), "550.54.15");
        assert_eq!(
            parse_proc_version(PROPRIETARY).unwrap().to_string(),
            "535.104.05"
        );
        assert_eq!(parse_proc_version(ARM).unwrap().to_string(), "570.124.06");
    }

    #[test]
    fn rejects_text_without_a_version() {
        assert!(parse_proc_version("").is_err());
        assert!(parse_proc_version("NVRM version: something else\n").is_err());
        assert!(parse_proc_version("NVRM version: NVIDIA UNIX Kernel Module  Release\n").is_err());
    }

    #[test]
    fn versions_order_numerically_and_keep_two_digit_patches() {
        let a = DriverVersion::parse("535.104.05").unwrap();
        let b = DriverVersion::parse("535.54.03").unwrap();
        assert!(a > b);
        assert_eq!(
            DriverVersion::parse("390.157").unwrap().to_string(),
            "390.157"
        );
        for bad in ["", "550", "550.", "550.54.15.1", "v550.54", "550.x"] {
            assert!(DriverVersion::parse(bad).is_err(), "{bad:?}");
        }
    }
}
