//! A guard against request smuggling on every listener of the lab: requests
//! that carry both `Content-Length` and `Transfer-Encoding` are answered
//! 400 and the connection is closed.
//!
//! Why: when two hops disagree on where a request ends, a second request can
//! hide in the first one's body and reach the upstream unseen (request
//! smuggling). RFC 9112 §6.1 lets a server either reject such a message or
//! frame it by Transfer-Encoding alone and close the connection; hyper does
//! the latter, silently dropping the Content-Length before the proxy can see
//! it. The lab answers 400, so a learner sees the attack refused.
//!
//! How: [`FramingGuard`] wraps the client's connection and follows HTTP/1.1
//! framing as bytes arrive: it holds each request head back until it is
//! complete, checks it, then lets it through, and counts the body (by
//! Content-Length or chunk by chunk) to know where the next head starts. A
//! head with both lengths is replaced by a small request that carries
//! [`REJECT_HEADER`]; [`Guarded`] answers that one with 400. Bytes that are
//! not HTTP (a TLS hello, WebSocket frames after an upgrade, a tunnel) are
//! passed on untouched from then on, and hyper's own parser has the last
//! word. After CONNECT or an Upgrade the guard keeps judging, so when the
//! upgrade is refused and another request follows, it is checked too.
//!
//! The guard's files: `scan.rs` follows the framing byte by byte (a pure
//! state machine), `guard.rs` is the connection wrapper that holds a head
//! back and hands hyper what may pass, `service.rs` answers the stand-ins.

mod guard;
mod scan;
mod service;

pub use guard::FramingGuard;
pub use service::{Guarded, GuardedBody};

use crate::lab_headers::REJECT_HEADER;

/// Why the guard replaced what the client sent with a stand-in request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rejection {
    /// Both Content-Length and Transfer-Encoding (400).
    Smuggling,
    /// The HTTP/2 connection preface on an HTTP/1.1 listener (505).
    Http2,
    /// A request head that did not arrive whole within the header timeout (408).
    HeadTimeout,
    /// A request head larger than `--max-header-size` (431).
    HeadTooLarge,
}

/// `--max-header-size` by default: the whole request head, 32 KiB (nginx
/// refuses one header line over 8 KiB, Envoy a head over 60 KiB, Go allows
/// 1 MiB).
pub const DEFAULT_MAX_HEADER_SIZE: usize = 32 * 1024;

/// The largest `--max-header-size` there is: hyper's own read buffer
/// refuses a head past about 400 KiB whatever the guard allows.
pub const MAX_HEADER_SIZE_CEILING: usize = 256 * 1024;

impl Rejection {
    const ALL: [Rejection; 4] = [
        Rejection::Smuggling,
        Rejection::Http2,
        Rejection::HeadTimeout,
        Rejection::HeadTooLarge,
    ];

    /// The reason its stand-in request carries in [`REJECT_HEADER`].
    fn reason(self) -> &'static str {
        match self {
            Rejection::Smuggling => "both Content-Length and Transfer-Encoding",
            Rejection::Http2 => "an HTTP/2 connection preface",
            Rejection::HeadTimeout => "request head not finished in time",
            Rejection::HeadTooLarge => "request head larger than --max-header-size",
        }
    }

    /// The rejection a stand-in's [`REJECT_HEADER`] names.
    fn of_reason(reason: &str) -> Option<Rejection> {
        Rejection::ALL
            .into_iter()
            .find(|why| why.reason() == reason)
    }

    /// The stand-in request that carries this rejection to [`Guarded`]: a
    /// small GET hyper parses like any other.
    fn stand_in(self) -> Vec<u8> {
        format!(
            "GET / HTTP/1.1\r\nHost: lab\r\nContent-Length: 0\r\n{REJECT_HEADER}: {}\r\n\r\n",
            self.reason()
        )
        .into_bytes()
    }
}
