//! The Linux security modules a process may ask for: an AppArmor profile
//! (`process.apparmorProfile`) or an SELinux label (`process.selinuxLabel`), applied as runc
//! applies them: written to the process's own `exec` attribute, which the next `execve` takes.
//!
//! Whether a module is active is the running kernel's state, not the host snapshot's: the
//! workload runs on this kernel whatever host root the plan was made against, so this reads
//! the kernel's own `/sys` (as the gate's kernel checks do).

use std::io;
use std::path::Path;

/// A security module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lsm {
    /// AppArmor.
    AppArmor,
    /// SELinux.
    SeLinux,
}

impl Lsm {
    /// Its name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::AppArmor => "AppArmor",
            Self::SeLinux => "SELinux",
        }
    }

    /// Whether the running kernel has it active: AppArmor's module parameter says `Y`; SELinux
    /// has its filesystem mounted.
    pub fn active(self) -> bool {
        match self {
            Self::AppArmor => std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
                .is_ok_and(|v| v.trim() == "Y"),
            Self::SeLinux => Path::new("/sys/fs/selinux/enforce").exists(),
        }
    }

    /// Makes the calling thread's next `execve` take `label` (an AppArmor profile name, or an
    /// SELinux context). Needs `/proc` mounted where the thread is.
    pub fn set_exec(self, label: &str) -> io::Result<()> {
        match self {
            Self::AppArmor => {
                let text = format!("exec {label}");
                // The module's own attribute directory (Linux 5.8); the shared one before.
                std::fs::write("/proc/thread-self/attr/apparmor/exec", &text)
                    .or_else(|_| std::fs::write("/proc/thread-self/attr/exec", &text))
            }
            Self::SeLinux => std::fs::write("/proc/thread-self/attr/exec", label),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inactive_module_takes_no_label() {
        for lsm in [Lsm::AppArmor, Lsm::SeLinux] {
            if !lsm.active() {
                assert!(lsm.set_exec("unconfined").is_err(), "{}", lsm.name());
            }
        }
    }
}
