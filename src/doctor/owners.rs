//! Who holds a busy port, read from Linux's `/proc`: the socket's inode in
//! `/proc/net/tcp` and `tcp6`, the process whose `/proc/PID/fd` links to that
//! inode, and its `/proc/PID/cmdline`, shortened for reading. Only this
//! user's processes can be read (root's are all readable); for another
//! user's socket the owner is the uid `/proc/net/tcp` names, without a
//! process. Where there is no `/proc`, nobody is found.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use super::report::Owner;

/// The longest a command is shown in a table or a sentence.
const COMMAND_WIDTH: usize = 72;

/// Who holds each of these busy ports: one [`Owner`] per process, or per
/// socket whose process cannot be seen. A port nobody is seen holding is
/// absent.
pub(super) fn owners_of(ports: &[u16]) -> HashMap<u16, Vec<Owner>> {
    let sockets = read_sockets();
    let holders: HashMap<u16, Vec<&Socket>> = ports
        .iter()
        .map(|&port| (port, holders_of(&sockets, port)))
        .collect();
    let inodes: HashSet<u64> = holders.values().flatten().map(|s| s.inode).collect();
    let pids = if inodes.is_empty() {
        HashMap::new()
    } else {
        socket_pids(&inodes)
    };
    let my_uid = my_uid();
    let users = if inodes.is_empty() {
        HashMap::new()
    } else {
        user_names()
    };
    let user_of = |uid: u32| users.get(&uid).cloned();

    holders
        .into_iter()
        .map(|(port, sockets)| {
            let mut owners = Vec::new();
            let mut seen_pids = HashSet::new();
            for socket in sockets {
                let found = pids.get(&socket.inode).map(Vec::as_slice).unwrap_or(&[]);
                if found.is_empty() {
                    owners.push(Owner {
                        address: socket.addr.to_string(),
                        uid: socket.uid,
                        user: user_of(socket.uid),
                        other_user: Some(socket.uid) != my_uid,
                        pid: None,
                        command: None,
                        cmdline: Vec::new(),
                    });
                }
                for &pid in found {
                    if !seen_pids.insert(pid) {
                        continue;
                    }
                    let cmdline = read_cmdline(pid);
                    owners.push(Owner {
                        address: socket.addr.to_string(),
                        uid: socket.uid,
                        user: user_of(socket.uid),
                        other_user: Some(socket.uid) != my_uid,
                        pid: Some(pid),
                        command: (!cmdline.is_empty()).then(|| display_command(&cmdline)),
                        cmdline,
                    });
                }
            }
            (port, owners)
        })
        .collect()
}

/// A TCP socket from /proc/net/tcp or tcp6.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Socket {
    addr: SocketAddr,
    /// The kernel's state number: 0x0A is LISTEN, 0x06 TIME_WAIT.
    state: u8,
    uid: u32,
    inode: u64,
}

const TCP_LISTEN: u8 = 0x0A;
const TCP_TIME_WAIT: u8 = 0x06;

/// Every TCP socket of this network namespace; empty where there is no /proc.
fn read_sockets() -> Vec<Socket> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(parse_socket_line)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One line of /proc/net/tcp:
/// `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …`,
/// e.g. `0: 0100007F:07D2 00000000:0000 0A … 1000 0 123456 …`.
fn parse_socket_line(line: &str) -> Option<Socket> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (ip, port) = fields.get(1)?.split_once(':')?;
    let state = u8::from_str_radix(fields.get(3)?, 16).ok()?;
    let uid = fields.get(7)?.parse().ok()?;
    let inode = fields.get(9)?.parse().ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(Socket {
        addr: SocketAddr::new(parse_proc_ip(ip)?, port),
        state,
        uid,
        inode,
    })
}

/// The kernel prints an address as 32-bit words in the machine's byte order
/// (`0100007F` is 127.0.0.1 on x86): each word back to its bytes.
fn parse_proc_ip(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let text = hex.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(text, 16).ok()?.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

/// The sockets that stand in the way of binding 127.0.0.1:`port`: ones on
/// 127.0.0.1 itself or on every address (0.0.0.0, ::), listeners first.
fn holders_of(sockets: &[Socket], port: u16) -> Vec<&Socket> {
    let blocks = |socket: &&Socket| {
        let ip = match socket.addr.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        socket.addr.port() == port && (ip.is_unspecified() || ip == Ipv4Addr::LOCALHOST)
    };
    let listeners: Vec<&Socket> = sockets
        .iter()
        .filter(blocks)
        .filter(|s| s.state == TCP_LISTEN)
        .collect();
    if !listeners.is_empty() {
        return listeners;
    }
    // Bound but not listening (or connected from that port) blocks a bind as well.
    sockets
        .iter()
        .filter(blocks)
        .filter(|s| s.state != TCP_TIME_WAIT)
        .collect()
}

/// Which processes hold the sockets with these inodes: every
/// /proc/PID/fd/N that links to `socket:[INODE]`. Processes this user may
/// not read are skipped.
fn socket_pids(inodes: &HashSet<u64>) -> HashMap<u64, Vec<u32>> {
    let mut found: HashMap<u64, Vec<u32>> = HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    let mut pids: Vec<u32> = procs
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let inode = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok());
            if let Some(inode) = inode.filter(|inode| inodes.contains(inode)) {
                let pids = found.entry(inode).or_default();
                if !pids.contains(&pid) {
                    pids.push(pid);
                }
            }
        }
    }
    found
}

/// A process's arguments; its name (`comm`) when it has none (a kernel thread).
fn read_cmdline(pid: u32) -> Vec<String> {
    let args: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            bytes
                .split(|&b| b == 0)
                .filter(|arg| !arg.is_empty())
                .map(|arg| String::from_utf8_lossy(arg).into_owned())
                .collect()
        })
        .unwrap_or_default();
    if !args.is_empty() {
        return args;
    }
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|comm| vec![comm.trim().to_string()])
        .unwrap_or_default()
}

/// The effective uid of this process (the second field of `Uid:` in /proc/self/status).
fn my_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// uid → name, from /etc/passwd.
fn user_names() -> HashMap<u32, String> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid = fields.nth(1)?.parse().ok()?;
            Some((uid, name.to_string()))
        })
        .collect()
}

/// A command line for reading: the program's file name, arguments quoted
/// when they need it, Java's flags and class path left out, and cut at
/// [`COMMAND_WIDTH`].
fn display_command(cmdline: &[String]) -> String {
    let Some((program, args)) = cmdline.split_first() else {
        return String::new();
    };
    let name = Path::new(program)
        .file_name()
        .map_or_else(|| program.clone(), |n| n.to_string_lossy().into_owned());
    let mut words = vec![name.clone()];
    if name == "java" {
        // `java -Xmx… -cp LONG org.example.Main ARGS`: the class and its arguments say what it is.
        let mut rest = args.iter();
        let mut skipped = false;
        while let Some(arg) = rest.next() {
            match arg.as_str() {
                "-cp" | "-classpath" | "--class-path" | "-p" | "--module-path" => {
                    rest.next();
                    skipped = true;
                }
                "-jar" => {
                    words.push("-jar".into());
                    if let Some(jar) = rest.next() {
                        words.push(quote(jar));
                    }
                    break;
                }
                flag if flag.starts_with('-') => skipped = true,
                class => {
                    words.push(quote(class));
                    break;
                }
            }
        }
        if skipped {
            words.insert(1, "…".into());
        }
        words.extend(rest.map(|arg| quote(arg)));
    } else {
        words.extend(args.iter().map(|arg| quote(arg)));
    }
    let line = words.join(" ");
    if line.chars().count() <= COMMAND_WIDTH {
        return line;
    }
    let cut: String = line.chars().take(COMMAND_WIDTH - 1).collect();
    format!("{cut}…")
}

/// An argument as a shell would need it written.
fn quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=,@%+~^".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::args;

    #[test]
    fn proc_addresses_are_words_in_machine_order() {
        // 127.0.0.1 is the bytes 7F 00 00 01; read as a little-endian word
        // the kernel prints 0100007F (a big-endian machine prints 7F000001).
        let word = u32::from_ne_bytes([127, 0, 0, 1]);
        let hex = format!("{word:08X}");
        assert_eq!(parse_proc_ip(&hex), Some(IpAddr::from([127, 0, 0, 1])));
        let any6 = "0".repeat(32);
        assert_eq!(
            parse_proc_ip(&any6),
            Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
        );
        assert_eq!(parse_proc_ip("12"), None);
    }

    #[test]
    fn a_listen_line_is_parsed() {
        let local = format!("{:08X}:07D2", u32::from_ne_bytes([127, 0, 0, 1]));
        let line = format!(
            "   0: {local} 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 424242 1 0000000000000000 100 0 0 10 0"
        );
        let socket = parse_socket_line(&line).expect("parses");
        assert_eq!(socket.addr, "127.0.0.1:2002".parse().unwrap());
        assert_eq!(socket.state, TCP_LISTEN);
        assert_eq!(socket.uid, 1000);
        assert_eq!(socket.inode, 424242);
    }

    #[test]
    fn holders_are_loopback_or_every_address_listeners_first() {
        let socket = |addr: &str, state, inode| Socket {
            addr: addr.parse().unwrap(),
            state,
            uid: 0,
            inode,
        };
        let sockets = [
            socket("127.0.0.2:2002", TCP_LISTEN, 1),
            socket("127.0.0.1:2002", TCP_TIME_WAIT, 2),
            socket("[::]:2002", TCP_LISTEN, 3),
            socket("0.0.0.0:2003", TCP_LISTEN, 4),
            socket("127.0.0.1:2004", 0x07, 5),
        ];
        let inodes = |port| {
            holders_of(&sockets, port)
                .iter()
                .map(|s| s.inode)
                .collect::<Vec<_>>()
        };
        assert_eq!(inodes(2002), [3]);
        assert_eq!(inodes(2003), [4]);
        assert_eq!(inodes(2004), [5], "bound, not listening, still blocks");
        assert_eq!(inodes(2005), Vec::<u64>::new());
    }

    #[test]
    fn commands_are_shortened_for_reading() {
        assert_eq!(
            display_command(&args(&["/work/target/debug/lab", "proxy", "--lb", "wrr"])),
            "lab proxy --lb wrr"
        );
        assert_eq!(
            display_command(&args(&["python3", "-c", "print('hi there')"])),
            r"python3 -c 'print('\''hi there'\'')'"
        );
        let zk = args(&[
            "/usr/bin/java",
            "-Dzookeeper.log.dir=/tmp/x",
            "-cp",
            "/usr/share/java/zookeeper.jar:/etc/zookeeper/conf",
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            "/tmp/zoo.cfg",
        ]);
        assert_eq!(
            display_command(&zk),
            "java … org.apache.zookeeper.server.quorum.QuorumPeerMain /tmp/zoo.cfg"
        );
        let long = display_command(&args(&["sleep", &"9".repeat(200)]));
        assert_eq!(long.chars().count(), COMMAND_WIDTH);
        assert!(long.ends_with('…'));
    }
}
