//! Who may build namespaces, and the way around root: a user namespace.
//!
//! Creating a network namespace needs CAP_SYS_ADMIN. Root has it. Anyone
//! else can, where the kernel allows it, first create a *user* namespace,
//! in which they are root (uid 0 there is their own uid outside), and then
//! create network namespaces owned by it: full power over those, none over
//! the machine's. That is what `unshare -Urn` does, and what
//! [`rerun_in_user_namespace`] does for `lab transparent`: it starts itself
//! again inside a new user namespace and waits for it.
//!
//! Some systems forbid it: `user.max_user_namespaces = 0` (RHEL 7's
//! default), Debian's old `kernel.unprivileged_userns_clone = 0`, Ubuntu's
//! AppArmor restriction (23.10 and later), or a container's seccomp
//! profile. [`explain_refusal`] says which, and how to allow it.

use std::io;
use std::os::unix::process::CommandExt as _;
use std::process::ExitCode;

use super::child::{exit_code_of, wait_passing_signals};

/// Set in the environment of the copy started inside a user namespace,
/// so that it does not try again.
pub const INSIDE_ENV: &str = "LAB_TRANSPARENT_IN_USER_NAMESPACE";

/// Whether this process is the copy inside its own user namespace.
pub fn inside_user_namespace() -> bool {
    std::env::var_os(INSIDE_ENV).is_some()
}

/// Starts this command line again in a new user namespace, mapped to the
/// caller's uid and gid, and waits for it (passing Ctrl-C and SIGTERM on).
/// `Err` when the kernel refused the user namespace.
pub async fn rerun_in_user_namespace(env: &[(&str, String)]) -> io::Result<ExitCode> {
    // SAFETY: getuid and getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // Prepared before fork: between fork and exec nothing may allocate.
    let uid_map = format!("0 {uid} 1\n");
    let gid_map = format!("0 {gid} 1\n");
    let mut command = tokio::process::Command::new("/proc/self/exe");
    command
        .args(std::env::args_os().skip(1))
        .env(INSIDE_ENV, "1");
    for (name, value) in env {
        command.env(name, value);
    }
    // SAFETY: only system calls between fork and exec (prctl, unshare,
    // open, write, close), on buffers allocated before the fork.
    unsafe {
        command.pre_exec(move || {
            // If this process dies, the copy is told to stop (and cleans up).
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                return Err(io::Error::last_os_error());
            }
            // An unprivileged process must give up setgroups before it
            // may write its gid_map.
            write_proc(c"/proc/self/setgroups", b"deny")?;
            write_proc(c"/proc/self/uid_map", uid_map.as_bytes())?;
            write_proc(c"/proc/self/gid_map", gid_map.as_bytes())?;
            Ok(())
        });
    }
    let child = command.spawn()?;
    Ok(exit_code_of(wait_passing_signals(child).await?))
}

/// open + write + close, usable between fork and exec.
fn write_proc(path: &std::ffi::CStr, bytes: &[u8]) -> io::Result<()> {
    // SAFETY: plain system calls on a NUL-terminated path and a valid buffer.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let written = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
        let err = io::Error::last_os_error();
        libc::close(fd);
        if written < 0 {
            return Err(err);
        }
    }
    Ok(())
}

/// Whether namespaces can be made here, and how: what `lab doctor` reports.
pub fn probe() -> Result<&'static str, String> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return match super::netns::Namespace::new("probe") {
            Ok(_) => Ok("as root"),
            Err(err) => Err(format!("root, yet a network namespace was refused: {err}")),
        };
    }
    let mut command = std::process::Command::new("/bin/true");
    // SAFETY: unshare is a system call.
    unsafe {
        command.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    match command.status() {
        Ok(_) => Ok("without root, in a user namespace"),
        Err(err) => Err(explain_refusal(&err)),
    }
}

/// Why an unprivileged user namespace was refused (`err`, from the kernel),
/// and how to allow it, from the settings this kernel has.
pub fn explain_refusal(err: &io::Error) -> String {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|value| value.trim().to_string())
    };
    let mut why = format!("a user namespace was refused ({err})");
    let mut fix = Vec::new();
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        why.push_str(": user.max_user_namespaces is 0");
        fix.push("sudo sysctl -w user.max_user_namespaces=15000");
    }
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        why.push_str(": kernel.unprivileged_userns_clone is 0");
        fix.push("sudo sysctl -w kernel.unprivileged_userns_clone=1");
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        why.push_str(": AppArmor restricts unprivileged user namespaces");
        fix.push("sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0");
    }
    if fix.is_empty() {
        // Usually a container's seccomp profile.
        why.push_str(" (in a container? its seccomp profile may forbid unshare)");
    }
    fix.push("or run it as root: sudo lab transparent");
    format!("{why}. To allow it: {}", fix.join(", "))
}
