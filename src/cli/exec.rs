//! `exec`, with runc's flags.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::oci::Globals;
use crate::boot::Outcome;
use crate::runtime::{ExecOptions, ExecRequest};

/// Run a process in a created or running container, in all its namespaces and cgroups
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: the process's (128 + N when signal N killed it) unless --detach; 125 when it could not be set up, 126 when it could not be executed, 127 when it was not found; 1 when the container cannot be used.\nThe process is set up like the container's first one, and its accelerator ioctls go through the container's ioctl gate."
)]
pub struct ExecArgs {
    /// The process as OCI JSON (process.args, env, cwd, user, capabilities, ...); replaces
    /// the command and the other process flags' base
    #[arg(long, short = 'p', value_name = "FILE")]
    process: Option<PathBuf>,
    /// Return once the process runs, without waiting for it
    #[arg(long, short = 'd')]
    detach: bool,
    /// Write the process's pid to FILE
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Give the process a terminal: its master goes to --console-socket, or, in the
    /// foreground without one, accelgate proxies the caller's terminal (as runc does)
    #[arg(long, short = 't')]
    tty: bool,
    /// Send the terminal's master to this socket
    #[arg(long, value_name = "SOCKET")]
    console_socket: Option<PathBuf>,
    /// Set an environment variable (repeatable)
    #[arg(long, short = 'e', value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// The working directory in the container
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// Run as UID[:GID] (numbers)
    #[arg(long, short = 'u', value_name = "UID[:GID]")]
    user: Option<String>,
    /// Supplementary group ids (comma-separated or repeated)
    #[arg(long, short = 'g', value_name = "GID", value_delimiter = ',')]
    additional_gids: Vec<u32>,
    /// Add a capability (CAP_NET_ADMIN or NET_ADMIN; repeatable)
    #[arg(long, short = 'c', value_name = "CAP")]
    cap: Vec<String>,
    /// Set no_new_privs
    #[arg(long)]
    no_new_privs: bool,
    /// Pass N fds beyond stdio (3 to 3+N-1) to the process
    #[arg(long, value_name = "N", default_value_t = 0)]
    preserve_fds: u32,
    /// The process's AppArmor profile (refused where AppArmor is not active)
    #[arg(long, value_name = "PROFILE")]
    apparmor: Option<String>,
    /// The process's SELinux label (refused where SELinux is not active)
    #[arg(long, value_name = "LABEL")]
    process_label: Option<String>,
    /// The container's id
    id: String,
    /// The command and its arguments
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    command: Vec<String>,
}

/// `exec`.
pub fn exec(globals: &Globals, args: &ExecArgs) -> ExitCode {
    let request = ExecRequest {
        process_file: args.process.clone(),
        args: args.command.clone(),
        env: args.env.clone(),
        cwd: args.cwd.clone(),
        user: args.user.clone(),
        additional_gids: args.additional_gids.clone(),
        caps: args.cap.clone(),
        no_new_privs: args.no_new_privs,
        tty: args.tty,
        apparmor: args.apparmor.clone(),
        process_label: args.process_label.clone(),
    };
    let options = ExecOptions {
        console_socket: args.console_socket.clone(),
        detach: args.detach,
        pid_file: args.pid_file.clone(),
        preserve_fds: args.preserve_fds,
    };
    match crate::runtime::exec(&globals.state_root(), &args.id, &request, &options) {
        Ok(Outcome::Exited(status)) => ExitCode::from(status.clamp(0, 255) as u8),
        Ok(Outcome::Failed { status, message }) => {
            globals.fail(&message);
            ExitCode::from(status.clamp(0, 255) as u8)
        }
        Ok(Outcome::Detached(_) | Outcome::Created(_)) => ExitCode::SUCCESS,
        Err(e) => globals.runtime_error(&e),
    }
}
