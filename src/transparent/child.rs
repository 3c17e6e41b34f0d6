//! A child process `lab transparent` waits for (the command `--run` runs,
//! or this program again inside a user namespace): Ctrl-C and SIGTERM are
//! passed on to it, and its exit becomes this process's.

use std::io;
use std::process::{ExitCode, ExitStatus};

/// Waits for `child`; on Ctrl-C or SIGTERM, sends it SIGTERM and goes on
/// waiting, so that it can clean up before this process does.
pub async fn wait_passing_signals(mut child: tokio::process::Child) -> io::Result<ExitStatus> {
    let pid = child.id();
    let shutdown = crate::net::shutdown_signal();
    tokio::pin!(shutdown);
    tokio::select! {
        status = child.wait() => status,
        () = &mut shutdown => {
            if let Some(pid) = pid {
                // SAFETY: a signal to our own child, which we have not reaped.
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
            child.wait().await
        }
    }
}

/// A child's exit status as this process's exit code (128 + the signal
/// that killed it, as shells say).
pub fn exit_code_of(status: ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        (None, Some(signal)) => ExitCode::from(u8::try_from(128 + signal).unwrap_or(1)),
        (None, None) => ExitCode::FAILURE,
    }
}
