//! The one NVIDIA ioctl accelgate issues itself: `CHECK_VERSION_STR` with the query command,
//! on the host's control node, for the driver version the gate's tables are chosen by (as
//! gVisor asks the device rather than trusting a file).
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::abi::{
    NV_ESC_CHECK_VERSION_STR, NV_IOCTL_MAGIC, NV_RM_API_VERSION_CMD_QUERY,
    NV_RM_API_VERSION_REPLY_RECOGNIZED, RmApiVersion,
};
use super::version::DriverVersion;
use crate::family::iowr;

/// The version the driver behind the control node `ctl` reports.
pub fn device_version(ctl: &Path) -> io::Result<DriverVersion> {
    let file = File::options().read(true).write(true).open(ctl)?;
    let mut query = RmApiVersion {
        cmd: NV_RM_API_VERSION_CMD_QUERY,
        reply: 0,
        version_string: [0; 64],
    };
    let request = iowr(
        NV_IOCTL_MAGIC,
        NV_ESC_CHECK_VERSION_STR,
        size_of::<RmApiVersion>(),
    );
    // SAFETY: `query` is a live `nv_ioctl_rm_api_version_t` of exactly the size the request
    // encodes (asserted in abi.rs), which is all the driver reads and writes.
    let ret = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            libc::c_ulong::from(request),
            std::ptr::from_mut(&mut query),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    parse_reply(&query).ok_or_else(|| io::Error::other("the driver gave no version"))
}

/// The version in a `CHECK_VERSION_STR` query's answer.
fn parse_reply(reply: &RmApiVersion) -> Option<DriverVersion> {
    if reply.reply != NV_RM_API_VERSION_REPLY_RECOGNIZED {
        return None;
    }
    let end = reply.version_string.iter().position(|b| *b == 0)?;
    let text = std::str::from_utf8(&reply.version_string[..end]).ok()?;
    DriverVersion::parse(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recognized_reply_carries_the_version() {
        let mut reply = RmApiVersion {
            cmd: NV_RM_API_VERSION_CMD_QUERY,
            reply: NV_RM_API_VERSION_REPLY_RECOGNIZED,
            version_string: [0; 64],
        };
        reply.version_string[..9].copy_from_slice(b"580.65.06");
        assert_eq!(parse_reply(&reply), DriverVersion::parse("580.65.06").ok());
        reply.reply = 0;
        assert_eq!(parse_reply(&reply), None);
        assert!(device_version(Path::new("/nonexistent/nvidiactl")).is_err());
    }
}
