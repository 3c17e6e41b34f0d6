//! Network namespaces, held by file descriptor: how `lab transparent` gets
//! a little network of its own without touching the machine's.
//!
//! A network namespace is a whole network stack: its own interfaces,
//! addresses, routes and nftables rules. Linux gives one to each *thread*:
//! a thread that calls `unshare(CLONE_NEWNET)` gets a new, empty one, and
//! a thread that calls `setns(fd)` joins the one `fd` refers to. A socket
//! belongs to the namespace of the thread that created it, for its whole
//! life, whichever thread uses it afterwards. So:
//!
//! - [`Namespace::new`] makes one on a short-lived thread and keeps only a
//!   file descriptor to it: the descriptor alone keeps it alive, and when
//!   the last descriptor closes (this process exits, even by `kill -9`) the
//!   kernel removes it with its interfaces and rules. Nothing the lab makes
//!   can outlive it, which is why it uses no named namespace (`ip netns
//!   add` pins one under /run/netns until someone deletes it);
//! - [`Namespace::command`] runs a program (`ip`, `nft`, `curl`) inside one:
//!   the child joins it between `fork` and `exec`;
//! - [`Namespace::spawn_thread`] runs code on a thread inside one: what it
//!   creates (listeners, outbound connections) lives there.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// One network namespace, kept alive by this descriptor.
#[derive(Debug)]
pub struct Namespace {
    name: &'static str,
    fd: OwnedFd,
}

impl Namespace {
    /// A new, empty network namespace (only a `lo`, down). Needs
    /// CAP_SYS_ADMIN: root, or root of a user namespace this process made.
    pub fn new(name: &'static str) -> io::Result<Namespace> {
        // On a thread of its own: unshare moves the calling thread, and
        // this one is thrown away afterwards, so no thread of the runtime
        // ever changes namespace under its tasks.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // SAFETY: unshare only changes this thread's namespaces.
                    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    let fd = open_namespace(Path::new("/proc/thread-self/ns/net"))?;
                    Ok(Namespace { name, fd })
                })
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the namespace thread panicked")))
        })
    }

    /// A namespace another process holds, by path (`/proc/PID/fd/N`).
    pub fn open(name: &'static str, path: &Path) -> io::Result<Namespace> {
        Ok(Namespace {
            name,
            fd: open_namespace(path)?,
        })
    }

    /// What the lab calls it (`client`, `gateway`, `server`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// A path another process can open to reach this namespace while this
    /// one runs (`ip link set … netns PATH`, a joining `--run`).
    pub fn path(&self) -> String {
        format!("/proc/{}/fd/{}", std::process::id(), self.fd.as_raw_fd())
    }

    /// `program` to be run inside this namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        self.enter_before_exec(&mut command, None);
        command
    }

    /// Makes `command` join this namespace (after `user`, a user namespace
    /// to join first) between fork and exec.
    pub fn enter_before_exec(&self, command: &mut Command, user: Option<&Namespace>) {
        let net = self.fd.as_raw_fd();
        let user = user.map(|user| user.fd.as_raw_fd());
        // SAFETY: between fork and exec only async-signal-safe calls are
        // allowed: setns is a system call.
        unsafe {
            command.pre_exec(move || {
                if let Some(user) = user
                    && libc::setns(user, libc::CLONE_NEWUSER) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                if libc::setns(net, libc::CLONE_NEWNET) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// Runs `work` on a new thread inside this namespace: every socket it
    /// creates, and every thread it starts, lives there.
    pub fn spawn_thread<T, F>(&self, work: F) -> io::Result<std::thread::JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let fd = self.fd.try_clone()?;
        std::thread::Builder::new()
            .name(format!("lab-{}", self.name))
            .spawn(move || {
                // SAFETY: setns only changes this (new) thread's namespace.
                if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    panic!(
                        "cannot join a namespace this process made: {}",
                        io::Error::last_os_error()
                    );
                }
                drop(fd);
                work()
            })
    }

    /// Runs `work` inside this namespace on a short-lived thread and waits
    /// for it (creating a listener there, writing a sysctl).
    pub fn run<T, F>(&self, work: F) -> io::Result<T>
    where
        F: FnOnce() -> io::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_thread(work)?
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("a namespace thread panicked")))
    }
}

fn open_namespace(path: &Path) -> io::Result<OwnedFd> {
    let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::other("a namespace path with a NUL byte"))?;
    // SAFETY: a plain open(2) of a NUL-terminated path.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The user namespace this process is in (for a joiner, see
/// [`Namespace::enter_before_exec`]).
pub fn user_namespace_of(pid: u32) -> io::Result<Namespace> {
    Namespace::open("user", Path::new(&format!("/proc/{pid}/ns/user")))
}
