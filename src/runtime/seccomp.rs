//! The spec's seccomp profile (`linux.seccomp`): checked field by field, then compiled with
//! libseccomp (the library runc and crun use, so that a profile means the same here as there)
//! into the classic BPF program that the workload installs on top of the ioctl gate's filter
//! (`boot::SpecFilter`). The flags are applied by accelgate's own `seccomp(2)` call, so that
//! every kernel flag works whatever libseccomp version is installed.

use std::io::{Read, Seek};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use super::RuntimeError;
use super::abi::{SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW};
use crate::boot::{BPF_MAXINSNS, SpecFilter};
use crate::supervisor::abi::{SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, SockFilter};

/// The errno of `SCMP_ACT_ERRNO` and `SCMP_ACT_TRACE` without `errnoRet`, as runc and crun
/// use it.
const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

/// The largest errno a filter can return (`MAX_ERRNO`).
const MAX_ERRNO: u32 = 4095;

/// Syscall arguments a condition can name.
const ARGUMENTS: usize = 6;

/// Syscalls the ioctl gate's filter sends to its supervisor: a profile that notified them too
/// would take them from the gate (the newer filter's listener wins a tie).
const GATE_ROUTED: [&str; 4] = ["ioctl", "open", "openat", "openat2"];

/// The workload hands the listener over with `sendmsg` once the filter is installed: a profile
/// that notified it would wait for an agent that has no listener yet.
const HAND_OVER: &str = "sendmsg";

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::Unsupported {
        field: field.into(),
        reason: reason.into(),
    }
}

/// One rule for libseccomp: a syscall by name, its action, and conditions that must all hold.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    name: String,
    action: ScmpAction,
    conditions: Vec<ScmpArgCompare>,
    /// `linux.seccomp.syscalls[i]`, for errors.
    field: String,
}

/// The profile, checked and in libseccomp's terms.
#[derive(Debug)]
struct Profile {
    default: ScmpAction,
    architectures: Vec<ScmpArch>,
    rules: Vec<Rule>,
    flags: u32,
    notifies: bool,
    warnings: Vec<String>,
}

/// The action of `field` (`SCMP_ACT_*` with its `errnoRet`).
fn action(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    field: &str,
    errno_field: &str,
    warnings: &mut Vec<String>,
) -> Result<ScmpAction, RuntimeError> {
    let errno = || match errno_ret {
        Some(errno) if errno > MAX_ERRNO => Err(invalid(
            errno_field,
            format!("{errno} is not an errno (0 to {MAX_ERRNO})"),
        )),
        Some(errno) => Ok(errno),
        None => Ok(DEFAULT_ERRNO),
    };
    let converted = match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno()? as i32),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno()? as u16),
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    };
    if errno_ret.is_some()
        && !matches!(
            action,
            LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace
        )
    {
        warnings.push(format!(
            "{errno_field} is ignored: {field} is {action}, which returns no errno"
        ));
    }
    Ok(converted)
}

fn arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// `SCMP_CMP_*` as libseccomp's comparison; `SCMP_CMP_MASKED_EQ` masks with `value` and
/// compares with `valueTwo`, as runc and crun read it.
fn condition(
    arg: &oci_spec::runtime::LinuxSeccompArg,
    field: &str,
    warnings: &mut Vec<String>,
) -> Result<ScmpArgCompare, RuntimeError> {
    if arg.index() >= ARGUMENTS {
        return Err(invalid(
            format!("{field}.index"),
            format!(
                "{} is not a syscall argument (0 to {})",
                arg.index(),
                ARGUMENTS - 1
            ),
        ));
    }
    let value = arg.value();
    let op = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            let datum = arg.value_two().unwrap_or(0);
            return Ok(ScmpArgCompare::new(
                arg.index() as u32,
                ScmpCompareOp::MaskedEqual(value),
                datum,
            ));
        }
    };
    if arg.value_two().is_some_and(|v| v != 0) {
        warnings.push(format!(
            "{field}.valueTwo is ignored: only SCMP_CMP_MASKED_EQ uses it"
        ));
    }
    Ok(ScmpArgCompare::new(arg.index() as u32, op, value))
}

impl Profile {
    /// Checks `seccomp` and turns it into libseccomp's terms; `gated`: the sandbox has the
    /// ioctl gate's filter under this one.
    fn of(seccomp: &LinuxSeccomp, gated: bool) -> Result<Self, RuntimeError> {
        let mut warnings = Vec::new();
        let default = action(
            seccomp.default_action(),
            seccomp.default_errno_ret(),
            "linux.seccomp.defaultAction",
            "linux.seccomp.defaultErrnoRet",
            &mut warnings,
        )?;
        let architectures = seccomp
            .architectures()
            .iter()
            .flatten()
            .map(|a| arch(*a))
            .collect();
        let mut rules = Vec::new();
        for (index, syscall) in seccomp.syscalls().iter().flatten().enumerate() {
            let field = format!("linux.seccomp.syscalls[{index}]");
            let action = action(
                syscall.action(),
                syscall.errno_ret(),
                &format!("{field}.action"),
                &format!("{field}.errnoRet"),
                &mut warnings,
            )?;
            if syscall.names().is_empty() {
                return Err(invalid(format!("{field}.names"), "names no syscall"));
            }
            let mut conditions = Vec::new();
            let mut per_argument = [0usize; ARGUMENTS];
            for (i, arg) in syscall.args().iter().flatten().enumerate() {
                let condition = condition(arg, &format!("{field}.args[{i}]"), &mut warnings)?;
                per_argument[arg.index()] += 1;
                conditions.push(condition);
            }
            // libseccomp ANDs the conditions of one rule and takes one per argument; two on
            // the same argument mean either (Docker's profile lists `personality` values so),
            // so each becomes a rule of its own, as runc and crun do.
            let alternatives: Vec<Vec<ScmpArgCompare>> = if per_argument.iter().any(|n| *n > 1) {
                conditions.into_iter().map(|c| vec![c]).collect()
            } else {
                vec![conditions]
            };
            for name in syscall.names() {
                if action == ScmpAction::Notify {
                    if gated && GATE_ROUTED.contains(&name.as_str()) {
                        return Err(invalid(
                            format!("{field}.action"),
                            format!(
                                "SCMP_ACT_NOTIFY on {name} would take it from the ioctl gate, which routes it itself"
                            ),
                        ));
                    }
                    if name == HAND_OVER {
                        return Err(invalid(
                            format!("{field}.action"),
                            format!(
                                "SCMP_ACT_NOTIFY on {name}: the listener is handed to the agent with {name} once the filter is installed"
                            ),
                        ));
                    }
                }
                // A rule with the default action changes nothing, and libseccomp refuses it.
                if action == default {
                    continue;
                }
                for conditions in &alternatives {
                    rules.push(Rule {
                        name: name.clone(),
                        action,
                        conditions: conditions.clone(),
                        field: field.clone(),
                    });
                }
            }
        }
        if default == ScmpAction::Notify {
            let reason = if gated {
                "SCMP_ACT_NOTIFY as the default would take the gate's syscalls from the ioctl gate"
            } else {
                "SCMP_ACT_NOTIFY as the default would notify the sendmsg that hands the listener over"
            };
            return Err(invalid("linux.seccomp.defaultAction", reason));
        }
        let notifies = rules.iter().any(|r| r.action == ScmpAction::Notify);
        let mut flags = 0;
        for (index, flag) in seccomp.flags().iter().flatten().enumerate() {
            match flag {
                LinuxSeccompFilterFlag::SeccompFilterFlagLog => flags |= SECCOMP_FILTER_FLAG_LOG,
                LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                    flags |= SECCOMP_FILTER_FLAG_SPEC_ALLOW;
                }
                LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv if notifies => {
                    flags |= SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
                }
                LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                    warnings.push(format!(
                        "linux.seccomp.flags[{index}]: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is ignored: no syscall is SCMP_ACT_NOTIFY"
                    ));
                }
                // The workload is single-threaded when it installs the filter, so every
                // thread it will ever have gets it: what TSYNC asks for.
                LinuxSeccompFilterFlag::SeccompFilterFlagTsync => {}
            }
        }
        if notifies && seccomp.listener_path().is_none() {
            return Err(invalid(
                "linux.seccomp.listenerPath",
                "missing: the profile has SCMP_ACT_NOTIFY, whose listener goes to an agent at this path",
            ));
        }
        if seccomp.listener_metadata().is_some() && seccomp.listener_path().is_none() {
            return Err(invalid(
                "linux.seccomp.listenerMetadata",
                "given without linux.seccomp.listenerPath",
            ));
        }
        if !notifies && seccomp.listener_path().is_some() {
            warnings.push(
                "linux.seccomp.listenerPath is ignored: no syscall is SCMP_ACT_NOTIFY".into(),
            );
        }
        Ok(Self {
            default,
            architectures,
            rules,
            flags,
            notifies,
            warnings,
        })
    }

    /// The BPF program libseccomp makes of it, and the names it does not know on this
    /// machine's architectures (skipped, as runc and crun skip them).
    fn program(&self) -> Result<(Vec<SockFilter>, Vec<String>), RuntimeError> {
        let library = |what: &str, e: &dyn std::fmt::Display| {
            invalid("linux.seccomp", format!("libseccomp: {what}: {e}"))
        };
        let mut context =
            ScmpFilterContext::new(self.default).map_err(|e| library("new filter", &e))?;
        for arch in &self.architectures {
            let present = context
                .is_arch_present(*arch)
                .map_err(|e| library("architecture", &e))?;
            if !present {
                context
                    .add_arch(*arch)
                    .map_err(|e| library(&format!("add architecture {arch:?}"), &e))?;
            }
        }
        let mut unknown: Vec<String> = Vec::new();
        for rule in &self.rules {
            let Ok(syscall) = ScmpSyscall::from_name(&rule.name) else {
                if !unknown.contains(&rule.name) {
                    unknown.push(rule.name.clone());
                }
                continue;
            };
            context
                .add_rule_conditional(rule.action, syscall, &rule.conditions)
                .map_err(|e| {
                    invalid(
                        rule.field.clone(),
                        format!("libseccomp refuses the rule for {}: {e}", rule.name),
                    )
                })?;
        }
        let memfd = rustix::fs::memfd_create("accelgate-seccomp", rustix::fs::MemfdFlags::CLOEXEC)
            .map_err(|e| library("memfd for the program", &e))?;
        context
            .export_bpf(&memfd)
            .map_err(|e| library("export the program", &e))?;
        let mut file = std::fs::File::from(memfd);
        let mut bytes = Vec::new();
        file.rewind()
            .and_then(|()| file.read_to_end(&mut bytes))
            .map_err(|e| library("read the program", &e))?;
        let program = decode(&bytes);
        if program.len() > BPF_MAXINSNS {
            return Err(invalid(
                "linux.seccomp",
                format!(
                    "compiles to {} BPF instructions; the kernel takes at most {BPF_MAXINSNS}",
                    program.len()
                ),
            ));
        }
        Ok((program, unknown))
    }
}

/// `struct sock_filter`s in native byte order, as libseccomp exports them.
fn decode(bytes: &[u8]) -> Vec<SockFilter> {
    bytes
        .chunks_exact(size_of::<SockFilter>())
        .map(|insn| SockFilter {
            code: u16::from_ne_bytes([insn[0], insn[1]]),
            jt: insn[2],
            jf: insn[3],
            k: u32::from_ne_bytes([insn[4], insn[5], insn[6], insn[7]]),
        })
        .collect()
}

/// Compiles `seccomp` into the filter the workload installs; `gated`: the sandbox has the
/// ioctl gate's filter under it. Warnings (ignored fields, syscall names this machine's
/// libseccomp does not know) go to stderr.
pub fn compile(seccomp: &LinuxSeccomp, gated: bool) -> Result<SpecFilter, RuntimeError> {
    let profile = Profile::of(seccomp, gated)?;
    let (program, unknown) = profile.program()?;
    for warning in &profile.warnings {
        eprintln!("warning: {warning}");
    }
    if !unknown.is_empty() {
        eprintln!(
            "warning: linux.seccomp.syscalls: {} skipped, unknown to libseccomp {} on this architecture",
            unknown.join(", "),
            libseccomp_version()
        );
    }
    Ok(SpecFilter {
        program,
        flags: profile.flags,
        agent: profile
            .notifies
            .then(|| seccomp.listener_path().clone())
            .flatten(),
    })
}

fn libseccomp_version() -> String {
    libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default()
}

/// The runtime-spec features document's `linux.seccomp`: what [`compile`] takes (every action,
/// operator and architecture of the spec; the flags it passes to `seccomp(2)`, `TSYNC` met by
/// construction).
pub fn features() -> serde_json::Value {
    use LinuxSeccompAction as Action;
    use LinuxSeccompFilterFlag as Flag;
    use LinuxSeccompOperator as Op;
    let actions = [
        Action::ScmpActKill,
        Action::ScmpActKillProcess,
        Action::ScmpActKillThread,
        Action::ScmpActTrap,
        Action::ScmpActErrno,
        Action::ScmpActTrace,
        Action::ScmpActAllow,
        Action::ScmpActLog,
        Action::ScmpActNotify,
    ];
    let operators = [
        Op::ScmpCmpNe,
        Op::ScmpCmpLt,
        Op::ScmpCmpLe,
        Op::ScmpCmpEq,
        Op::ScmpCmpGe,
        Op::ScmpCmpGt,
        Op::ScmpCmpMaskedEq,
    ];
    let archs = [
        Arch::ScmpArchX86,
        Arch::ScmpArchX86_64,
        Arch::ScmpArchX32,
        Arch::ScmpArchArm,
        Arch::ScmpArchAarch64,
        Arch::ScmpArchMips,
        Arch::ScmpArchMips64,
        Arch::ScmpArchMips64n32,
        Arch::ScmpArchMipsel,
        Arch::ScmpArchMipsel64,
        Arch::ScmpArchMipsel64n32,
        Arch::ScmpArchPpc,
        Arch::ScmpArchPpc64,
        Arch::ScmpArchPpc64le,
        Arch::ScmpArchS390,
        Arch::ScmpArchS390x,
        Arch::ScmpArchParisc,
        Arch::ScmpArchParisc64,
        Arch::ScmpArchRiscv64,
        Arch::ScmpArchLoongarch64,
        Arch::ScmpArchM68k,
        Arch::ScmpArchSh,
        Arch::ScmpArchSheb,
    ];
    let flags = [
        Flag::SeccompFilterFlagTsync,
        Flag::SeccompFilterFlagLog,
        Flag::SeccompFilterFlagSpecAllow,
        Flag::SeccompFilterFlagWaitKillableRecv,
    ];
    serde_json::json!({
        "enabled": true,
        "actions": actions,
        "operators": operators,
        "archs": archs,
        "knownFlags": flags,
        "supportedFlags": flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seccomp(json: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(json).unwrap()
    }

    fn error(json: serde_json::Value, gated: bool) -> String {
        Profile::of(&seccomp(json), gated).unwrap_err().to_string()
    }

    #[test]
    fn actions_errnos_and_conditions_are_libseccomps() {
        let profile = Profile::of(
            &seccomp(serde_json::json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 38,
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"],
                "syscalls": [
                    {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
                    {"names": ["kill"], "action": "SCMP_ACT_TRACE", "errnoRet": 3},
                    {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
                        {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                        {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}
                    ]},
                    {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [
                        {"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"},
                        {"index": 1, "value": 1, "op": "SCMP_CMP_NE"},
                        {"index": 2, "value": 2, "op": "SCMP_CMP_LT"},
                        {"index": 3, "value": 3, "op": "SCMP_CMP_LE"},
                        {"index": 4, "value": 4, "op": "SCMP_CMP_GE"},
                        {"index": 5, "value": 5, "op": "SCMP_CMP_GT"}
                    ]},
                    {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
                ]
            })),
            false,
        )
        .unwrap();
        assert_eq!(profile.default, ScmpAction::Errno(38));
        assert_eq!(profile.architectures, [ScmpArch::X8664, ScmpArch::X86]);
        assert_eq!(
            profile.flags,
            SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_SPEC_ALLOW
        );
        let summary: Vec<(&str, ScmpAction, usize)> = profile
            .rules
            .iter()
            .map(|r| (r.name.as_str(), r.action, r.conditions.len()))
            .collect();
        // getpid's rule is the default action: left out.
        assert_eq!(
            summary,
            [
                ("read", ScmpAction::Allow, 0),
                ("write", ScmpAction::Allow, 0),
                ("mkdir", ScmpAction::Errno(libc::EPERM), 0),
                ("kill", ScmpAction::Trace(3), 0),
                ("personality", ScmpAction::Allow, 1),
                ("personality", ScmpAction::Allow, 1),
                ("clone", ScmpAction::Allow, 6),
            ]
        );
        assert_eq!(
            profile.rules[6].conditions,
            [
                ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(2114060288), 0),
                ScmpArgCompare::new(1, ScmpCompareOp::NotEqual, 1),
                ScmpArgCompare::new(2, ScmpCompareOp::Less, 2),
                ScmpArgCompare::new(3, ScmpCompareOp::LessOrEqual, 3),
                ScmpArgCompare::new(4, ScmpCompareOp::GreaterEqual, 4),
                ScmpArgCompare::new(5, ScmpCompareOp::Greater, 5),
            ]
        );
        // libseccomp takes all of it.
        let (program, unknown) = profile.program().unwrap();
        assert!(program.len() > 10, "{}", program.len());
        assert!(unknown.is_empty(), "{unknown:?}");
    }

    #[test]
    fn unknown_names_are_skipped_and_reported() {
        let profile = Profile::of(
            &seccomp(serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "no_such_syscall"], "action": "SCMP_ACT_ERRNO"}]
            })),
            false,
        )
        .unwrap();
        let (_, unknown) = profile.program().unwrap();
        assert_eq!(unknown, ["no_such_syscall"]);
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_by_field() {
        let cases = [
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}
                ]}),
                false,
                "linux.seccomp.syscalls[0].args[0].index",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}),
                false,
                "linux.seccomp.defaultErrnoRet",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}
                ]}),
                false,
                "linux.seccomp.listenerPath",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a", "syscalls": [
                    {"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["ioctl"], "action": "SCMP_ACT_NOTIFY"}
                ]}),
                true,
                "linux.seccomp.syscalls[1].action",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a", "syscalls": [
                    {"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}
                ]}),
                false,
                "linux.seccomp.syscalls[0].action",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/a"}),
                false,
                "linux.seccomp.defaultAction",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "m"}),
                false,
                "linux.seccomp.listenerMetadata",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": [], "action": "SCMP_ACT_ERRNO"}
                ]}),
                false,
                "linux.seccomp.syscalls[0].names",
            ),
        ];
        for (json, gated, field) in cases {
            let err = error(json, gated);
            assert!(err.starts_with(field), "{field}: {err}");
        }
        // Without the gate, a profile may notify ioctl; its agent gets the listener.
        let notify = Profile::of(
            &seccomp(
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a",
                "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                "syscalls": [{"names": ["ioctl"], "action": "SCMP_ACT_NOTIFY"}]}),
            ),
            false,
        )
        .unwrap();
        assert!(notify.notifies);
        assert_eq!(notify.flags, SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV);
    }

    #[test]
    fn ignored_fields_are_warned_about() {
        let profile = Profile::of(
            &seccomp(
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a",
                "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_KILL", "errnoRet": 1,
                    "args": [{"index": 1, "value": 9, "valueTwo": 3, "op": "SCMP_CMP_EQ"}]}]}),
            ),
            false,
        )
        .unwrap();
        let warnings = profile.warnings.join("\n");
        for field in [
            "linux.seccomp.syscalls[0].errnoRet",
            "linux.seccomp.syscalls[0].args[0].valueTwo",
            "linux.seccomp.flags[0]",
            "linux.seccomp.listenerPath",
        ] {
            assert!(warnings.contains(field), "{field}: {warnings}");
        }
    }
}
