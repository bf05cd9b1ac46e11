use std::path::PathBuf;

use super::DeviceClass;

/// Errors from the device registry.
#[derive(Debug, thiserror::Error)]
pub enum VfsError {
    /// Two devices claim the same (kind, major, minor).
    #[error(
        "{kind} {major}:{minor} for {path} ({class}) is already registered to {existing_path} ({existing_class})"
    )]
    Duplicate {
        /// `c` or `b`.
        kind: char,
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
        /// The path that was being registered.
        path: PathBuf,
        /// Its class.
        class: DeviceClass,
        /// The path that holds the numbers.
        existing_path: PathBuf,
        /// Its class.
        existing_class: DeviceClass,
    },
    /// Every dynamic character major is taken.
    #[error("no dynamic character major left: 254..=234 and 511..=384 are all in use")]
    MajorsExhausted,
    /// A major that this registry did not hand out was released.
    #[error("character major {major} was not handed out by this registry")]
    NotDynamic {
        /// The major.
        major: u32,
    },
}
