//! Where a request ends: HTTP/1.1 framing followed byte by byte (RFC 9112
//! §6, §7.1), as a state machine with no I/O. [`State::scan`] says of a run
//! of bytes what may pass to hyper, what to hold back until a head or a
//! line is whole, and where a request to refuse begins.

use super::Rejection;

/// A chunk-size or trailer line longer than this is not held back: hyper
/// refuses it. (A request head has its own limit, `--max-header-size`.)
pub(super) const MAX_HEAD: usize = 512 * 1024;

/// The start of the HTTP/2 connection preface (RFC 9113 §3.4).
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// Where the guard is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Collecting a request head.
    Head,
    /// Inside a body of known length: this many bytes to go.
    Body(u64),
    /// Inside a chunked body (see [`Chunked`]).
    Chunked(Chunked),
    /// Not HTTP any more (upgrade, tunnel) or not followable: pass all.
    Passthrough,
    /// A request was rejected: nothing more is read from the client.
    Closed,
}

/// The chunked-coding sub-states (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunked {
    /// Reading a chunk-size line up to its LF.
    Size,
    /// Inside chunk data: this many bytes to go, then CRLF.
    Data(u64),
    /// The CRLF after chunk data: this many bytes to go.
    DataEnd(u8),
    /// After the last chunk: trailer lines, up to an empty line.
    Trailers,
}

/// The client's connection, with request framing checked (see the module docs).
/// What [`State::scan`] found in a run of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scan {
    /// Every byte may pass as it is.
    Pass,
    /// The first `n` bytes may pass; the rest is an unfinished head or
    /// line, held back until the rest of it arrives.
    Hold(usize),
    /// The first `n` bytes may pass; then comes a request to refuse (both
    /// lengths, an HTTP/2 preface): it is replaced by the stand-in and
    /// nothing more is read.
    Reject(usize, Rejection),
}

impl State {
    /// Follows `bytes` through the framing from this state, in place: no
    /// byte is copied. Stops where a head or a line is unfinished (it is
    /// judged again, from its start, when more bytes arrive).
    pub(super) fn scan(&mut self, bytes: &[u8], max_head: usize) -> Scan {
        let mut at = 0;
        while at < bytes.len() {
            let rest = &bytes[at..];
            match *self {
                State::Passthrough => return Scan::Pass,
                // Nothing is read after a rejection (see poll_read).
                State::Closed => return Scan::Hold(at),
                State::Body(left) => {
                    let n = left.min(rest.len() as u64);
                    at += n as usize;
                    *self = match left - n {
                        0 => State::Head,
                        left => State::Body(left),
                    };
                }
                State::Chunked(Chunked::Data(left)) => {
                    let n = left.min(rest.len() as u64);
                    at += n as usize;
                    *self = State::Chunked(match left - n {
                        0 => Chunked::DataEnd(2),
                        left => Chunked::Data(left),
                    });
                }
                State::Chunked(Chunked::DataEnd(left)) => {
                    at += 1;
                    *self = State::Chunked(match left {
                        1 => Chunked::Size,
                        left => Chunked::DataEnd(left - 1),
                    });
                }
                State::Chunked(Chunked::Size) | State::Chunked(Chunked::Trailers) => {
                    // Line-based: a line is judged when its LF arrives.
                    let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                        if rest.len() > MAX_HEAD {
                            *self = State::Passthrough;
                            return Scan::Pass;
                        }
                        return Scan::Hold(at);
                    };
                    self.end_of_line(&rest[..=end]);
                    at += end + 1;
                }
                State::Head => {
                    // Blank lines before a request are allowed (RFC 9112 §2.2).
                    if rest.starts_with(b"\r\n") {
                        at += 2;
                        continue;
                    }
                    if rest[0] == b'\n' {
                        at += 1;
                        continue;
                    }
                    // HTTP/2 without negotiation: answer it rather than drop it.
                    if rest.starts_with(HTTP2_PREFACE) {
                        return Scan::Reject(at, Rejection::Http2);
                    }
                    match judge_head(rest) {
                        Head::Partial if rest.len() <= max_head => return Scan::Hold(at),
                        // `--max-header-size`: refused with 431 before it is whole.
                        Head::Partial => return Scan::Reject(at, Rejection::HeadTooLarge),
                        Head::Complete(end, _) if end > max_head => {
                            return Scan::Reject(at, Rejection::HeadTooLarge);
                        }
                        Head::Complete(_, Some(Framing::Smuggling)) => {
                            return Scan::Reject(at, Rejection::Smuggling);
                        }
                        Head::Complete(end, framing) => {
                            at += end;
                            *self = match framing {
                                // The body is framed the same way with or without an
                                // Upgrade or CONNECT (hyper does so too). What follows
                                // may then be a tunnel, or (when the upgrade is
                                // refused) the next request: it is judged as a head.
                                // Tunnel bytes (TLS, WebSocket frames) are not one
                                // and are passed on untouched; a request is checked
                                // like any other.
                                Some(Framing::Length(0)) | Some(Framing::None) => State::Head,
                                Some(Framing::Length(n)) => State::Body(n),
                                Some(Framing::Chunked) => State::Chunked(Chunked::Size),
                                Some(Framing::Smuggling) | None => State::Passthrough,
                            };
                        }
                        // Not (the start of) an HTTP request we can follow, e.g. a
                        // TLS hello sent to a plain port, or more headers than we
                        // look at: hyper answers that itself, so do not hold it.
                        Head::Invalid => {
                            *self = State::Passthrough;
                            return Scan::Pass;
                        }
                    }
                }
            }
        }
        Scan::Pass
    }

    /// A chunk-size line or a trailer line ended.
    pub(super) fn end_of_line(&mut self, line: &[u8]) {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        *self = match *self {
            State::Chunked(Chunked::Size) => {
                let size = text.split(|&b| b == b';').next().unwrap_or(&[]);
                match std::str::from_utf8(size)
                    .ok()
                    .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                {
                    Some(0) => State::Chunked(Chunked::Trailers),
                    Some(n) => State::Chunked(Chunked::Data(n)),
                    // hyper will refuse the bad size; stop following.
                    None => State::Passthrough,
                }
            }
            _ if text.is_empty() => State::Head,
            other => other,
        };
    }
}

/// A request head, as far as the bytes so far tell.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Head {
    /// The head is not finished yet.
    Partial,
    /// A complete head of this many bytes, and how it frames its body
    /// (`None`: it frames it in a way hyper will refuse).
    Complete(usize, Option<Framing>),
    /// Not a request head (or more headers than the guard looks at).
    Invalid,
}

/// Parses a request head once, as hyper will (bare LFs included).
pub(super) fn judge_head(bytes: &[u8]) -> Head {
    // Uninitialised: httparse fills what it uses, and every request would
    // otherwise zero 128 headers' room (4 KiB) first.
    let mut headers = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; 128];
    let mut request = httparse::Request::new(&mut []);
    match request.parse_with_uninit_headers(bytes, &mut headers) {
        Ok(httparse::Status::Complete(end)) => Head::Complete(end, Framing::of(&request)),
        Ok(httparse::Status::Partial) => Head::Partial,
        Err(_) => Head::Invalid,
    }
}

/// How a request head frames its body.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Both Content-Length and Transfer-Encoding.
    Smuggling,
}

impl Framing {
    /// How a parsed head frames its body; `None` for a transfer coding
    /// hyper refuses (it answers that itself).
    pub(super) fn of(request: &httparse::Request<'_, '_>) -> Option<Framing> {
        let mut length = None;
        let mut transfer_encoding = None;
        for header in request.headers.iter() {
            if header.name.eq_ignore_ascii_case("content-length") {
                length = Some(header.value);
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_encoding = Some(header.value);
            }
        }
        match (length, transfer_encoding) {
            (Some(_), Some(_)) => Some(Framing::Smuggling),
            (None, Some(te)) => {
                let chunked_last = std::str::from_utf8(te).ok().is_some_and(|te| {
                    te.rsplit(',')
                        .next()
                        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
                });
                // A non-chunked transfer coding: hyper refuses it.
                chunked_last.then_some(Framing::Chunked)
            }
            (Some(cl), None) => std::str::from_utf8(cl)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .map(Framing::Length),
            (None, None) => Some(Framing::None),
        }
    }
}
