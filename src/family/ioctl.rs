//! ioctl request encoding and the named request type the device tables use.

use std::fmt;

/// Linux `_IOC` encoding: direction (2 bits), size (14 bits), type (8 bits), number (8 bits).
pub const fn ioc(dir: u32, magic: u8, nr: u8, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | ((magic as u32) << 8) | nr as u32
}

/// `_IOC_NONE`.
pub const IOC_NONE: u32 = 0;
/// `_IOC_WRITE` (user to kernel).
pub const IOC_WRITE: u32 = 1;
/// `_IOC_READ` (kernel to user).
pub const IOC_READ: u32 = 2;

/// `_IO(magic, nr)`.
pub const fn io(magic: u8, nr: u8) -> u32 {
    ioc(IOC_NONE, magic, nr, 0)
}
/// `_IOW(magic, nr, size)`.
pub const fn iow(magic: u8, nr: u8, size: usize) -> u32 {
    ioc(IOC_WRITE, magic, nr, size)
}
/// `_IOR(magic, nr, size)`.
pub const fn ior(magic: u8, nr: u8, size: usize) -> u32 {
    ioc(IOC_READ, magic, nr, size)
}
/// `_IOWR(magic, nr, size)`.
pub const fn iowr(magic: u8, nr: u8, size: usize) -> u32 {
    ioc(IOC_READ | IOC_WRITE, magic, nr, size)
}

/// An ioctl request number with its name, for tables, logs and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IoctlDef {
    /// The driver's name for it (`VFIO_DEVICE_GET_INFO`).
    pub name: &'static str,
    /// The request number.
    pub request: u32,
    /// Bytes of the argument struct the call reads or writes through its pointer (0 for none
    /// or a by-value argument); VFIO's `_IO` calls carry it only here.
    pub arg_size: usize,
}

impl fmt::Display for IoctlDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#x})", self.name, self.request)
    }
}

/// `_IOC_TYPE` of a request.
pub const fn ioc_type(request: u32) -> u8 {
    (request >> 8) as u8
}

/// `_IOC_SIZE` of a request: the bytes its number says the driver reads or writes.
pub const fn ioc_size(request: u32) -> usize {
    ((request >> 16) & 0x3fff) as usize
}

/// `_IOC_NR` of a request.
pub const fn ioc_nr(request: u32) -> u8 {
    request as u8
}
