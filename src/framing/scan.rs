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
    /// After the last chunk: trailer lines, each ended by CRLF, up to an
    /// empty one.
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
                State::Chunked(Chunked::Size) => {
                    // Line-based: a line is judged when its LF arrives (hyper
                    // refuses a bare LF in a chunk-size line, so the first LF
                    // ends every line it takes).
                    let Some(end) = memchr::memchr(b'\n', rest) else {
                        return self.unfinished_line(rest, at);
                    };
                    self.end_of_chunk_size(&rest[..=end]);
                    at += end + 1;
                }
                State::Chunked(Chunked::Trailers) => {
                    // hyper ends a trailer line only at CRLF (a bare LF is one
                    // more byte of the line) and the trailers at a line that is
                    // CRLF alone. A guard that ended lines at a bare LF would
                    // take `0\r\n\n` for the end of the body, and read the
                    // trailers that follow as requests, while hyper reads on
                    // (request smuggling past the guard).
                    let Some(cr) = memchr::memchr(b'\r', rest) else {
                        return self.unfinished_line(rest, at);
                    };
                    match rest.get(cr + 1) {
                        None => return self.unfinished_line(rest, at),
                        Some(b'\n') => {
                            at += cr + 2;
                            if cr == 0 {
                                *self = State::Head;
                            }
                        }
                        // A CR without its LF: hyper refuses the body.
                        Some(_) => {
                            *self = State::Passthrough;
                            return Scan::Pass;
                        }
                    }
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
                    // Judged on at most one byte past the limit, so that the
                    // verdict does not depend on how much arrived beyond it.
                    let upto = rest.len().min(max_head.saturating_add(1));
                    match judge_head(&rest[..upto]) {
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
                        // Not (the start of) an HTTP request, e.g. a TLS hello
                        // sent to a plain port: hyper answers that itself, so do
                        // not hold it.
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

    /// A line of a chunked body (from `at` in the bytes given to
    /// [`State::scan`]) has not ended yet: held back until it does, unless
    /// it is longer than any line hyper takes.
    fn unfinished_line(&mut self, rest: &[u8], at: usize) -> Scan {
        if rest.len() > MAX_HEAD {
            *self = State::Passthrough;
            return Scan::Pass;
        }
        Scan::Hold(at)
    }

    /// A chunk-size line ended (`line` with its line end).
    fn end_of_chunk_size(&mut self, line: &[u8]) {
        let text = strip_cr(line.strip_suffix(b"\n").unwrap_or(line));
        let size = text.split(|&b| b == b';').next().unwrap_or(&[]);
        *self = match std::str::from_utf8(size)
            .ok()
            .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
        {
            Some(0) => State::Chunked(Chunked::Trailers),
            Some(n) => State::Chunked(Chunked::Data(n)),
            // hyper will refuse the bad size; stop following.
            None => State::Passthrough,
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
    /// Not a request head: its request line cannot be one.
    Invalid,
}

/// Reads a request head as far as the guard needs it: where it ends (the
/// first empty line; bare LFs count, as hyper takes them) and its
/// Content-Length and Transfer-Encoding. It does not check the head
/// further: hyper parses every head it is given and refuses a bad one (400,
/// and the connection closes), so the guard only has to agree with hyper
/// on the heads hyper takes. For those it reads the same lines, names and
/// values, so the same framing.
///
/// Its verdict on a run of bytes never changes as more bytes arrive, except
/// from `Partial`: `Invalid` is decided by the request line alone, and
/// `Complete` by the bytes up to the empty line. So a head is judged the
/// same however its bytes are cut into reads.
///
/// Why not httparse, which hyper uses: hyper runs it on every head anyway,
/// and running it a second time here checked every byte twice. Finding the
/// line ends (`memchr`) and looking at two names costs about half as much
/// (bench/RESULTS.md has the count).
pub(super) fn judge_head(bytes: &[u8]) -> Head {
    let Some(line_end) = memchr::memchr(b'\n', bytes) else {
        return match could_start_a_request_line(bytes) {
            true => Head::Partial,
            false => Head::Invalid,
        };
    };
    if !is_request_line(strip_cr(&bytes[..line_end])) {
        return Head::Invalid;
    }
    let mut lengths = Lengths::default();
    let headers_start = line_end + 1;
    let mut line_start = headers_start;
    for end in memchr::memchr_iter(b'\n', &bytes[headers_start..]).map(|at| headers_start + at) {
        let line = strip_cr(&bytes[line_start..end]);
        line_start = end + 1;
        if line.is_empty() {
            return Head::Complete(line_start, lengths.framing());
        }
        lengths.read(line);
    }
    Head::Partial
}

/// A line without the CR before its LF.
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Whether a request line can still begin this way: a method (a token,
/// RFC 9110 §9.1) so far, or a method and a space. Bytes that are not
/// (a TLS hello, SSH's banner) are passed to hyper at once, not held.
fn could_start_a_request_line(bytes: &[u8]) -> bool {
    // The CR of an empty line before the request (RFC 9112 §2.2), its LF
    // yet to come.
    if bytes == b"\r" {
        return true;
    }
    match bytes.iter().position(|&b| !is_tchar(b)) {
        None => true,
        Some(at) => at > 0 && bytes[at] == b' ',
    }
}

/// Whether a whole line (without its line end) can be a request line as
/// hyper takes one: `method SP target SP HTTP/1.x` (RFC 9112 §3). The
/// target is not checked: hyper refuses a bad one.
fn is_request_line(line: &[u8]) -> bool {
    let method = line.iter().take_while(|&&b| is_tchar(b)).count();
    method > 0
        && line.get(method) == Some(&b' ')
        && line.len() > method + 1 + b" HTTP/1.1".len()
        && (line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0"))
}

/// A token character (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What a head's Content-Length and Transfer-Encoding lines say.
#[derive(Default)]
struct Lengths<'a> {
    /// Whether any Content-Length line came, and the length all of them
    /// agree on (`None`: one is not a number, or two differ).
    length: Option<Option<u64>>,
    /// The value of the last Transfer-Encoding line.
    transfer_encoding: Option<&'a [u8]>,
}

impl<'a> Lengths<'a> {
    /// Notes a header line if it is one of the two. A name is followed by
    /// its colon at once in any line hyper takes (RFC 9112 §5.1).
    fn read(&mut self, line: &'a [u8]) {
        const LENGTH: &[u8] = b"content-length:";
        const TRANSFER_ENCODING: &[u8] = b"transfer-encoding:";
        let starts_with =
            |name: &[u8]| line.len() >= name.len() && line[..name.len()].eq_ignore_ascii_case(name);
        // The first letter sorts out every other header at one compare.
        match line.first().map(u8::to_ascii_lowercase) {
            Some(b'c') if starts_with(LENGTH) => {
                let value = &line[LENGTH.len()..];
                self.length = Some(match self.length {
                    // An earlier line was already one hyper refuses.
                    Some(None) => None,
                    before => agreed_length(value, before.flatten()),
                });
            }
            Some(b't') if starts_with(TRANSFER_ENCODING) => {
                self.transfer_encoding = Some(&line[TRANSFER_ENCODING.len()..]);
            }
            _ => {}
        }
    }

    /// How these lengths frame the body; `None` for a transfer coding or
    /// a length hyper refuses (it answers that itself).
    fn framing(&self) -> Option<Framing> {
        match (self.length, self.transfer_encoding) {
            (Some(_), Some(_)) => Some(Framing::Smuggling),
            (None, Some(te)) => {
                // hyper frames by the last coding of the last line.
                let last = te.rsplit(|&b| b == b',').next().unwrap_or(te);
                // A non-chunked transfer coding: hyper refuses it.
                last.trim_ascii()
                    .eq_ignore_ascii_case(b"chunked")
                    .then_some(Framing::Chunked)
            }
            (Some(length), None) => length.map(Framing::Length),
            (None, None) => Some(Framing::None),
        }
    }
}

/// The length a Content-Length line gives, as hyper's server reads one:
/// digits only (no sign, no list), and the same as the one an earlier line
/// gave (`before`). `None` if it does not (hyper refuses the request).
fn agreed_length(value: &[u8], before: Option<u64>) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
    before.is_none_or(|before| before == n).then_some(n)
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
