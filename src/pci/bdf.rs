use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// A PCI function address, `DDDD:BB:DD.F`, as the kernel names `/sys/bus/pci/devices` entries.
///
/// The domain has 4 hex digits, or 5 on hosts with Intel VMD (`10000:00:00.0`). Ordering is
/// PCI bus order (domain, bus, device, function), which is also NVML's GPU order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    domain: u32,
    bus: u8,
    device: u8,
    function: u8,
}

/// The largest domain with 5 hex digits.
const MAX_DOMAIN: u32 = 0xf_ffff;
const MAX_DEVICE: u8 = 0x1f;
const MAX_FUNCTION: u8 = 7;

impl Bdf {
    /// A BDF from its parts, or `None` when a part is out of range.
    pub const fn new(domain: u32, bus: u8, device: u8, function: u8) -> Option<Self> {
        if domain > MAX_DOMAIN || device > MAX_DEVICE || function > MAX_FUNCTION {
            return None;
        }
        Some(Self {
            domain,
            bus,
            device,
            function,
        })
    }

    /// PCI segment (domain) number.
    pub const fn domain(&self) -> u32 {
        self.domain
    }

    /// Bus number.
    pub const fn bus(&self) -> u8 {
        self.bus
    }

    /// Device (slot) number, 0..=31.
    pub const fn device(&self) -> u8 {
        self.device
    }

    /// Function number, 0..=7.
    pub const fn function(&self) -> u8 {
        self.function
    }

    /// The same slot's function 0: the key that groups the functions of one multi-function
    /// device (TPU7x has one function per core).
    pub const fn slot(&self) -> Self {
        Self {
            function: 0,
            ..*self
        }
    }

    /// Parses `DDDD:BB:DD.F`; the reason names the part that is wrong.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let mut parts = text.split(':');
        let (Some(domain), Some(bus), Some(slot), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not DDDD:BB:DD.F");
        };
        let (device, function) = slot.split_once('.').ok_or("not DDDD:BB:DD.F")?;
        let domain = hex_field(domain, 4..=5).ok_or("domain is not 4 or 5 hex digits")?;
        let bus = hex_field(bus, 2..=2).ok_or("bus is not 2 hex digits")?;
        let device = hex_field(device, 2..=2).ok_or("device is not 2 hex digits")?;
        let function = hex_field(function, 1..=1).ok_or("function is not 1 hex digit")?;
        if device > u32::from(MAX_DEVICE) {
            return Err("device number above 0x1f");
        }
        if function > u32::from(MAX_FUNCTION) {
            return Err("function number above 7");
        }
        // Two hex digits at most, so the casts cannot truncate.
        Ok(Self {
            domain,
            bus: bus as u8,
            device: device as u8,
            function: function as u8,
        })
    }
}

/// A fixed-width hex field, or `None` when the width or a digit is wrong.
fn hex_field(text: &str, width: std::ops::RangeInclusive<usize>) -> Option<u32> {
    if !width.contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

impl FromStr for Bdf {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl Serialize for Bdf {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_kernel_names() {
        for text in [
            "0000:00:04.0",
            "0000:00:0b.0",
            "0000:1b:00.0",
            "0001:ff:1f.7",
            "10000:00:02.0",
        ] {
            assert_eq!(Bdf::parse(text).map(|b| b.to_string()), Ok(text.to_owned()));
        }
    }

    #[test]
    fn accepts_upper_case_and_prints_lower_case() {
        assert_eq!(
            Bdf::parse("0000:AB:0C.1").unwrap().to_string(),
            "0000:ab:0c.1"
        );
    }

    #[test]
    fn rejects_everything_else() {
        let cases = [
            ("", "not DDDD:BB:DD.F"),
            ("0000:00:04", "not DDDD:BB:DD.F"),
            ("00:04.0", "not DDDD:BB:DD.F"),
            ("0000:00:00:04.0", "not DDDD:BB:DD.F"),
            ("000:00:04.0", "domain is not 4 or 5 hex digits"),
            ("100000:00:04.0", "domain is not 4 or 5 hex digits"),
            ("0000:0:04.0", "bus is not 2 hex digits"),
            ("0000:000:04.0", "bus is not 2 hex digits"),
            ("0000:00:4.0", "device is not 2 hex digits"),
            ("0000:00:04.0z", "function is not 1 hex digit"),
            ("0000:00:04.10", "function is not 1 hex digit"),
            ("0000:00:20.0", "device number above 0x1f"),
            ("0000:00:04.8", "function number above 7"),
            ("0000:0g:04.0", "bus is not 2 hex digits"),
            ("0000:00:04.0\n", "function is not 1 hex digit"),
            ("+000:00:04.0", "domain is not 4 or 5 hex digits"),
        ];
        for (text, reason) in cases {
            assert_eq!(Bdf::parse(text), Err(reason), "{text:?}");
        }
    }

    #[test]
    fn orders_by_bus_position() {
        let mut bdfs: Vec<Bdf> = [
            "0000:1b:00.0",
            "0000:04:00.0",
            "10000:00:00.0",
            "0000:04:00.1",
        ]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
        bdfs.sort();
        let names: Vec<String> = bdfs.iter().map(Bdf::to_string).collect();
        assert_eq!(
            names,
            [
                "0000:04:00.0",
                "0000:04:00.1",
                "0000:1b:00.0",
                "10000:00:00.0"
            ]
        );
    }

    #[test]
    fn slot_groups_functions() {
        let a: Bdf = "0000:00:04.0".parse().unwrap();
        let b: Bdf = "0000:00:04.1".parse().unwrap();
        assert_eq!(a.slot(), b.slot());
        assert_ne!(a, b);
    }

    #[test]
    fn new_checks_ranges() {
        assert!(Bdf::new(0, 0, 0x20, 0).is_none());
        assert!(Bdf::new(0, 0, 0, 8).is_none());
        assert!(Bdf::new(0x10_0000, 0, 0, 0).is_none());
        assert_eq!(Bdf::new(0, 0x1b, 0, 0).unwrap().to_string(), "0000:1b:00.0");
    }
}
