//! ZooKeeper for service discovery (服务发现): the article's `LoadBalanceZkConf`.
//!
//! In the article, every real server registers itself in ZooKeeper as an
//! *ephemeral* node under one path, and the proxy watches that path's
//! children: a server that starts appears in the proxy's list, a server that
//! stops (or dies, once its session expires) disappears from it, and nobody
//! edits a config file. This module is the ZooKeeper side of that lesson:
//!
//! - [`ZkUrl`]: where to look, `zk://HOST:PORT[,HOST:PORT…]/PATH`.
//! - [`registry`]: [`register`] a server as `PATH/NAME` and keep it there
//!   (`lab realserver --register`).
//! - [`watch`]: [`watch_children`] of `PATH`, as a `tokio::sync::watch` of
//!   name → data (what a proxy's discovery follows).
//! - [`server`]: a standalone ZooKeeper from Debian's `zookeeper` package,
//!   on loopback with its data in a temp dir (`lab zk up`, and the tests).
//! - [`ls`]: `lab zk ls`, the registrations as a table.
//!
//! The client is the `zookeeper-client` crate (async, tokio); only the lab's
//! logic is written here.

pub mod ls;
pub mod registry;
pub mod server;
pub mod watch;

pub use registry::{Registration, SESSION_TIMEOUT, register};
pub use server::ZooKeeperServer;
pub use watch::{ChildrenWatch, Members, watch_children};

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use zookeeper_client as zkc;

/// ZooKeeper's usual client port.
pub const DEFAULT_PORT: u16 = 2181;

/// Where the lab's real servers register by default.
pub const DEFAULT_URL: &str = "zk://127.0.0.1:2181/lab/realserver";

/// A ZooKeeper ensemble and a znode path in it: `zk://HOST:PORT[,HOST:PORT…]/PATH`.
///
/// A missing port means 2181. The path is absolute, without a trailing `/`,
/// and is not the root: it names the node whose children are the servers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ZkUrl {
    /// `HOST:PORT`, IPv6 hosts in brackets, in the order written.
    hosts: Vec<String>,
    path: String,
}

/// Why a `zk://` URL was refused; the message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a ZooKeeper URL: {why}; write zk://HOST:PORT[,HOST:PORT…]/PATH, e.g. {DEFAULT_URL}"
)]
pub struct ZkUrlError {
    input: String,
    why: String,
}

impl ZkUrl {
    /// The hosts as the ZooKeeper client wants them: `h1:p1,h2:p2`.
    pub fn connect_string(&self) -> String {
        self.hosts.join(",")
    }

    /// The znode path, e.g. `/lab/realserver`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The same ensemble with another path (validated as in `zk://…/PATH`).
    pub fn with_path(&self, path: &str) -> Result<ZkUrl, ZkUrlError> {
        format!("zk://{}{path}", self.connect_string()).parse()
    }

    /// The path of the child `name`: `PATH/NAME`.
    pub fn child_path(&self, name: &str) -> String {
        format!("{}/{name}", self.path)
    }

    /// The hosts for a message: `127.0.0.1:2181` or `a:2181, b:2181`.
    pub fn hosts_display(&self) -> String {
        self.hosts.join(", ")
    }
}

impl fmt::Display for ZkUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "zk://{}{}", self.connect_string(), self.path)
    }
}

impl FromStr for ZkUrl {
    type Err = ZkUrlError;

    fn from_str(input: &str) -> Result<ZkUrl, ZkUrlError> {
        let fail = |why: String| ZkUrlError {
            input: input.to_string(),
            why,
        };
        let s = input.trim();
        let rest = match s.get(..5) {
            Some(scheme) if scheme.eq_ignore_ascii_case("zk://") => &s[5..],
            _ => {
                return Err(fail(match s.split_once("://") {
                    Some((scheme, _)) => format!("the scheme is {scheme}://, not zk://"),
                    None => "it does not start with zk://".to_string(),
                }));
            }
        };
        let (hosts, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if hosts.is_empty() {
            return Err(fail("no ZooKeeper server before the path".to_string()));
        }
        let hosts = hosts
            .split(',')
            .map(parse_host_port)
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        let path = parse_path(path).map_err(fail)?;
        Ok(ZkUrl { hosts, path })
    }
}

/// `HOST[:PORT]` → `HOST:PORT` (IPv6 as `[ADDR]:PORT`).
fn parse_host_port(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("an empty server in the list (two commas in a row?)".to_string());
    }
    let (host, port) = if let Some(bracketed) = s.strip_prefix('[') {
        let Some((addr, after)) = bracketed.split_once(']') else {
            return Err(format!("{s:?} opens a [ but does not close it"));
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{addr:?} in brackets is not an IPv6 address"));
        }
        let port =
            match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(|| {
                    format!("{s:?}: after ] comes :PORT, e.g. [::1]:{DEFAULT_PORT}")
                })?),
            };
        (format!("[{addr}]"), port)
    } else {
        let (host, port) = match s.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        };
        if port.is_some_and(|p| p.contains(':')) {
            return Err(format!(
                "{s:?} has more than one ':'; write an IPv6 address in brackets, e.g. [::1]:{DEFAULT_PORT}"
            ));
        }
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if host.is_empty() || !host.chars().all(valid) {
            return Err(format!("{host:?} is not a host name or IP address"));
        }
        (host.to_string(), port)
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => return Err(format!("{p:?} is not a port (1 to 65535)")),
        },
    };
    Ok(format!("{host}:{port}"))
}

/// Checks a znode path against ZooKeeper's rules (absolute, no empty, `.`
/// or `..` segments, no control characters) and drops one trailing `/`.
fn parse_path(path: &str) -> Result<String, String> {
    let path = path.strip_suffix('/').unwrap_or(path);
    if path.is_empty() {
        return Err(
            "no path: name the node whose children are the servers, e.g. /lab/realserver"
                .to_string(),
        );
    }
    if path.contains(['?', '#']) {
        return Err(format!(
            "{path:?} has a query or fragment; a ZooKeeper path is only /SEGMENT/SEGMENT…"
        ));
    }
    for segment in path[1..].split('/') {
        match segment {
            "" => return Err(format!("{path:?} has an empty segment (//)")),
            "." | ".." => return Err(format!("{path:?} has a {segment:?} segment")),
            _ if segment.chars().any(char::is_control) => {
                return Err(format!("{path:?} has a control character"));
            }
            _ => {}
        }
    }
    if path == "/zookeeper" || path.starts_with("/zookeeper/") {
        return Err("/zookeeper is ZooKeeper's own; choose another path".to_string());
    }
    Ok(path.to_string())
}

/// Opens a session with the ensemble of `url`, failing fast (not after the
/// session timeout) when no server answers, with an error that says what to
/// do about it.
pub(crate) async fn connect(url: &ZkUrl, session_timeout: Duration) -> anyhow::Result<zkc::Client> {
    let hosts = url.connect_string();
    let attempt = zkc::Client::connector()
        .with_session_timeout(session_timeout)
        .with_fail_eagerly()
        .connect(&hosts);
    // The client bounds its own attempt; this is a backstop for a peer that
    // accepts the connection and then says nothing.
    let result = match tokio::time::timeout(session_timeout + Duration::from_secs(2), attempt).await
    {
        Ok(result) => result.map_err(|err| err.to_string()),
        Err(_) => Err(format!("no session within {session_timeout:?}")),
    };
    match result {
        Ok(client) => {
            tracing::debug!(
                "ZooKeeper session {} with {} (timeout {:?})",
                client.session_id(),
                url.hosts_display(),
                client.session_timeout()
            );
            Ok(client)
        }
        Err(client_error) => Err(unreachable(url, &client_error).await),
    }
}

/// "cannot reach ZooKeeper at …": the reason found by a plain TCP connect
/// when there is one (connection refused), else the client's.
async fn unreachable(url: &ZkUrl, client_error: &str) -> anyhow::Error {
    let mut reason = None;
    // The host is already in the message when there is only one.
    let prefix = |host: &str| match url.hosts.len() {
        1 => String::new(),
        _ => format!("{host}: "),
    };
    for host in &url.hosts {
        let connect = tokio::net::TcpStream::connect(host.as_str());
        match tokio::time::timeout(Duration::from_secs(1), connect).await {
            Ok(Ok(_)) => {
                reason = Some(format!(
                    "{host} accepts connections, but no ZooKeeper session could be made: \
                     {client_error}; is it ZooKeeper?"
                ));
                break;
            }
            Ok(Err(err)) => {
                reason
                    .get_or_insert_with(|| format!("{}{}", prefix(host), lowercase_io_error(&err)));
            }
            Err(_) => {
                reason.get_or_insert_with(|| format!("{}no answer within 1s", prefix(host)));
            }
        }
    }
    let reason = reason.unwrap_or_else(|| client_error.to_string());
    let start = match url.hosts.as_slice() {
        [host] if host != &format!("127.0.0.1:{DEFAULT_PORT}") => {
            format!("lab zk up --listen {host}")
        }
        _ => "lab zk up".to_string(),
    };
    anyhow::anyhow!(
        "cannot reach ZooKeeper at {} ({reason}); start one with `{start}`",
        url.hosts_display()
    )
}

/// `Connection refused (os error 111)` → `connection refused`.
fn lowercase_io_error(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        _ => err.to_string(),
    }
}

/// The ZooKeeper client's errors that end a session for good: the caller
/// needs a new session, not a retry.
pub(crate) fn is_session_over(err: &zkc::Error) -> bool {
    matches!(
        err,
        zkc::Error::SessionExpired
            | zkc::Error::ClientClosed
            | zkc::Error::AuthFailed
            | zkc::Error::SessionMoved
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ZkUrl {
        s.parse().unwrap_or_else(|err| panic!("{s}: {err}"))
    }

    fn error(s: &str) -> String {
        s.parse::<ZkUrl>().unwrap_err().to_string()
    }

    #[test]
    fn the_default_url_parses_and_prints_back() {
        let url = parse(DEFAULT_URL);
        assert_eq!(url.connect_string(), "127.0.0.1:2181");
        assert_eq!(url.path(), "/lab/realserver");
        assert_eq!(url.to_string(), DEFAULT_URL);
        assert_eq!(
            url.child_path("127.0.0.1:2003"),
            "/lab/realserver/127.0.0.1:2003"
        );
    }

    #[test]
    fn several_hosts_ipv6_and_a_default_port() {
        let url = parse("zk://a.example:2181,10.0.0.2:2182,[::1]:2183,b/x");
        assert_eq!(
            url.connect_string(),
            "a.example:2181,10.0.0.2:2182,[::1]:2183,b:2181"
        );
        assert_eq!(url.path(), "/x");
        assert_eq!(
            url.to_string(),
            "zk://a.example:2181,10.0.0.2:2182,[::1]:2183,b:2181/x"
        );
        // What Display prints parses back to the same URL.
        assert_eq!(parse(&url.to_string()), url);
        assert_eq!(parse("zk://[::1]/x").connect_string(), "[::1]:2181");
    }

    #[test]
    fn a_trailing_slash_and_an_upper_case_scheme_are_accepted() {
        let url = parse("ZK://127.0.0.1:2181/lab/realserver/");
        assert_eq!(url.to_string(), DEFAULT_URL);
    }

    #[test]
    fn with_path_keeps_the_hosts() {
        let url = parse(DEFAULT_URL).with_path("/other/place").unwrap();
        assert_eq!(url.to_string(), "zk://127.0.0.1:2181/other/place");
        assert!(parse(DEFAULT_URL).with_path("no-slash").is_err());
    }

    #[test]
    fn errors_say_what_to_write() {
        for (input, why) in [
            ("127.0.0.1:2181/lab", "does not start with zk://"),
            ("http://127.0.0.1:2181/lab", "the scheme is http://"),
            ("zk:///lab", "no ZooKeeper server"),
            ("zk://127.0.0.1:2181", "no path"),
            ("zk://127.0.0.1:2181/", "no path"),
            ("zk://127.0.0.1:0/lab", "not a port"),
            ("zk://127.0.0.1:99999/lab", "not a port"),
            ("zk://127.0.0.1:abc/lab", "not a port"),
            ("zk://a:1,,b:2/lab", "empty server"),
            ("zk://::1:2181/lab", "IPv6 address in brackets"),
            ("zk://[::1/lab", "does not close"),
            ("zk://[nope]:1/lab", "not an IPv6 address"),
            ("zk://bad host:1/lab", "not a host name"),
            ("zk://h:1/lab//x", "empty segment"),
            ("zk://h:1/lab/../x", "\"..\" segment"),
            ("zk://h:1/lab?x=1", "query or fragment"),
            ("zk://h:1/zookeeper/quota", "ZooKeeper's own"),
        ] {
            let message = error(input);
            assert!(message.contains(why), "{input}: {message}");
            assert!(
                message.contains("e.g. zk://127.0.0.1:2181/lab/realserver"),
                "{input}: {message}"
            );
        }
    }
}
