//! Properties of the request-framing guard ([`FramingGuard`]) that sits in
//! front of hyper on every listener, driven by `now_or_never` over an
//! in-memory client that sends its bytes in pieces of random sizes.

use super::{any_case, config};
use futures_util::FutureExt;
use lab::framing::FramingGuard;
use lab::lab_headers::REJECT_HEADER;
use proptest::prelude::*;
use proptest::sample::Index;
use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// A client that sends `data` in pieces (sizes from `steps`, in turn, each
/// also bounded by the reader's buffer), and before some pieces (`stalls`)
/// first answers "not yet" (Pending, waking itself at once), noting it in
/// `stalled` so the driver knows the guard is not the one waiting.
struct Pieces {
    data: Vec<u8>,
    at: usize,
    steps: Vec<usize>,
    stalls: Vec<bool>,
    piece: usize,
    stalled_here: bool,
    stalled: Rc<Cell<bool>>,
}

impl AsyncRead for Pieces {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.stalls[this.piece % this.stalls.len()] && !this.stalled_here {
            this.stalled_here = true;
            this.stalled.set(true);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.stalled_here = false;
        let step = this.steps[this.piece % this.steps.len()];
        this.piece += 1;
        let n = step.min(this.data.len() - this.at).min(buf.remaining());
        buf.put_slice(&this.data[this.at..this.at + n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

/// How the bytes reach the guard, and how it is read.
#[derive(Debug, Clone)]
struct Delivery {
    /// Piece sizes the client sends (each at most this, at least 1).
    steps: Vec<usize>,
    /// Before which pieces the client stalls once.
    stalls: Vec<bool>,
    /// The sizes of the buffers the guard is read into, in turn.
    rooms: Vec<usize>,
}

impl Delivery {
    /// All at once, into hyper's usual 8 KiB buffer.
    fn whole() -> Delivery {
        Delivery {
            steps: vec![usize::MAX],
            stalls: vec![false],
            rooms: vec![8192],
        }
    }
}

fn delivery() -> impl Strategy<Value = Delivery> {
    (
        prop::collection::vec(prop_oneof![3 => 1usize..8, 1 => 8usize..200], 1..8),
        prop::collection::vec(prop::bool::weighted(0.2), 1..6),
        prop::collection::vec(prop_oneof![3 => 1usize..8, 1 => 8usize..300], 1..8),
    )
        .prop_map(|(steps, stalls, rooms)| Delivery {
            steps,
            stalls,
            rooms,
        })
}

/// Everything the guard lets through when the client sends `input` as
/// `delivery` says and then closes: up to the end of input, or until the
/// guard stops reading (it waits without the client waiting: a rejection).
fn read_through(input: &[u8], delivery: &Delivery) -> Result<Vec<u8>, TestCaseError> {
    let stalled = Rc::new(Cell::new(false));
    let mut guard = FramingGuard::new(Pieces {
        data: input.to_vec(),
        at: 0,
        steps: delivery.steps.clone(),
        stalls: delivery.stalls.clone(),
        piece: 0,
        stalled_here: false,
        stalled: stalled.clone(),
    });
    let mut seen = Vec::new();
    // Every two reads move at least one byte or a stall, so this is plenty.
    let limit = 4 * (input.len() + 2) * (delivery.stalls.len() + 1) + 64;
    for room in delivery.rooms.iter().cycle().take(limit) {
        let mut buf = vec![0; *room];
        match guard.read(&mut buf).now_or_never() {
            Some(Ok(0)) => return Ok(seen),
            Some(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Some(Err(err)) => return Err(TestCaseError::fail(format!("read failed: {err}"))),
            None if stalled.replace(false) => {}
            None => return Ok(seen),
        }
    }
    Err(TestCaseError::fail(format!(
        "the guard made no progress after {limit} reads; {} of {} bytes through",
        seen.len(),
        input.len()
    )))
}

/// Whether `bytes` is the guard's stand-in request: one complete head with
/// [`REJECT_HEADER`], no body.
fn is_stand_in(bytes: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Complete(end)) if end == bytes.len() => {
            let has = |name: &str| {
                request
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| h.value)
            };
            has(REJECT_HEADER).is_some()
                && has("content-length") == Some(b"0".as_slice())
                && has("transfer-encoding").is_none()
        }
        _ => false,
    }
}

/// What the guard may do with any input: let all of it through, or a
/// prefix of it and then the stand-in. Nothing else, in particular no byte
/// that the client did not send.
fn check_passed_or_refused(input: &[u8], seen: &[u8]) -> Result<(), TestCaseError> {
    if seen == input {
        return Ok(());
    }
    let common = input.iter().zip(seen).take_while(|(a, b)| a == b).count();
    prop_assert!(
        (0..=common).rev().any(|k| is_stand_in(&seen[k..])),
        "neither the input nor a prefix and the stand-in:\ninput {:?}\nseen  {:?}",
        String::from_utf8_lossy(input),
        String::from_utf8_lossy(seen)
    );
    Ok(())
}

/// That the guard let `passed` through unchanged, then gave the stand-in
/// and nothing more; `what` says otherwise.
fn check_passed_then_stand_in(
    passed: &[u8],
    input: &[u8],
    seen: &[u8],
    what: &str,
) -> Result<(), TestCaseError> {
    prop_assert!(
        seen.starts_with(passed) && is_stand_in(&seen[passed.len()..]),
        "{what}:\ninput {:?}\nseen  {:?}",
        String::from_utf8_lossy(input),
        String::from_utf8_lossy(seen)
    );
    Ok(())
}

/// A generated HTTP/1.1 request, well framed.
#[derive(Debug, Clone)]
struct Req {
    blank_line_before: bool,
    method: &'static str,
    target: String,
    /// The head's line ending: CRLF, or a bare LF (which hyper takes).
    eol: &'static str,
    headers: Vec<(String, String)>,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Length {
        header: &'static str,
        bytes: Vec<u8>,
    },
    Chunked {
        coding: &'static str,
        chunks: Vec<Chunk>,
        last_extension: Option<&'static str>,
        trailers: Vec<(String, String)>,
    },
}

#[derive(Debug, Clone)]
struct Chunk {
    data: Vec<u8>,
    /// 0: `1a`, 1: `1A`, 2: `001a`.
    size_style: u8,
    extension: Option<&'static str>,
}

impl Req {
    fn encode(&self, out: &mut Vec<u8>) {
        let eol = self.eol;
        if self.blank_line_before {
            out.extend_from_slice(b"\r\n");
        }
        let mut head = format!(
            "{} {} HTTP/1.1{eol}Host: lab{eol}",
            self.method, self.target
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}{eol}"));
        }
        match &self.body {
            Body::None => {}
            Body::Length { header, bytes } => {
                head.push_str(&format!("{header}: {}{eol}", bytes.len()));
            }
            Body::Chunked { coding, .. } => {
                head.push_str(&format!("Transfer-Encoding: {coding}{eol}"));
            }
        }
        head.push_str(eol);
        out.extend_from_slice(head.as_bytes());
        match &self.body {
            Body::None => {}
            Body::Length { bytes, .. } => out.extend_from_slice(bytes),
            Body::Chunked {
                chunks,
                last_extension,
                trailers,
                ..
            } => {
                for chunk in chunks {
                    let n = chunk.data.len();
                    let size = match chunk.size_style {
                        0 => format!("{n:x}"),
                        1 => format!("{n:X}"),
                        _ => format!("{n:04x}"),
                    };
                    let extension = chunk.extension.unwrap_or("");
                    out.extend_from_slice(format!("{size}{extension}\r\n").as_bytes());
                    out.extend_from_slice(&chunk.data);
                    out.extend_from_slice(b"\r\n");
                }
                let extension = last_extension.unwrap_or("");
                out.extend_from_slice(format!("0{extension}\r\n").as_bytes());
                for (name, value) in trailers {
                    out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

fn encode_all(requests: &[Req]) -> Vec<u8> {
    let mut out = Vec::new();
    for request in requests {
        request.encode(&mut out);
    }
    out
}

/// A header the guard does not frame by (those are chosen by [`Body`]).
fn ordinary_header() -> impl Strategy<Value = (String, String)> {
    (
        "[A-Za-z][A-Za-z0-9-]{0,12}".prop_filter("not a framing header", |name| {
            !["content-length", "transfer-encoding", "upgrade", "host"]
                .contains(&name.to_ascii_lowercase().as_str())
        }),
        "[!-~]([ -~]{0,16}[!-~])?",
    )
}

fn extension() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(prop::sample::select(&[";ext", ";a=1", ";name=\"v;x\""][..]))
}

fn body() -> impl Strategy<Value = Body> {
    let chunk = (
        prop::collection::vec(any::<u8>(), 1..40),
        0u8..3,
        extension(),
    )
        .prop_map(|(data, size_style, extension)| Chunk {
            data,
            size_style,
            extension,
        });
    prop_oneof![
        1 => Just(Body::None),
        1 => (
            prop::sample::select(&["Content-Length", "content-length", "CONTENT-LENGTH"][..]),
            prop::collection::vec(any::<u8>(), 0..80),
        )
            .prop_map(|(header, bytes)| Body::Length { header, bytes }),
        1 => (
            prop::sample::select(&["chunked", "Chunked", "gzip, chunked"][..]),
            prop::collection::vec(chunk, 0..4),
            extension(),
            prop::collection::vec(ordinary_header(), 0..3),
        )
            .prop_map(|(coding, chunks, last_extension, trailers)| Body::Chunked {
                coding,
                chunks,
                last_extension,
                trailers,
            }),
    ]
}

fn request() -> impl Strategy<Value = Req> {
    (
        prop::bool::weighted(0.1),
        "/[a-zA-Z0-9/._~%-]{0,16}(\\?[a-z0-9=&]{0,10})?",
        prop::sample::select(&["\r\n", "\r\n", "\n"][..]),
        prop::collection::vec(ordinary_header(), 0..4),
        body(),
        any::<Index>(),
    )
        .prop_map(|(blank_line_before, target, eol, headers, body, method)| {
            let methods: &[&'static str] = match body {
                Body::None => &["GET", "HEAD", "DELETE", "OPTIONS"],
                _ => &["POST", "PUT", "PATCH"],
            };
            Req {
                blank_line_before,
                method: methods[method.index(methods.len())],
                target,
                eol,
                headers,
                body,
            }
        })
}

/// A request with both Content-Length and Transfer-Encoding, in any order
/// and case, and what follows it (a body, or a smuggled request).
fn smuggling_request() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        any_case("content-length"),
        any_case("transfer-encoding"),
        0u32..100,
        prop::sample::select(&["\r\n", "\n"][..]),
        prop::collection::vec(ordinary_header(), 0..3),
        prop::collection::vec(any::<u8>(), 0..60),
    )
        .prop_map(|(length_first, cl, te, length, eol, headers, after)| {
            let mut lines = vec![format!("{cl}: {length}"), format!("{te}: chunked")];
            if !length_first {
                lines.reverse();
            }
            lines.extend(headers.iter().map(|(n, v)| format!("{n}: {v}")));
            let mut head = format!("POST /s HTTP/1.1{eol}Host: lab{eol}");
            for line in lines {
                head.push_str(&line);
                head.push_str(eol);
            }
            head.push_str(eol);
            let mut bytes = head.into_bytes();
            bytes.extend_from_slice(&after);
            bytes
        })
}

/// Bytes near valid ones: generated requests with a few bytes replaced,
/// inserted or deleted, so that every state of the guard meets bad input.
fn nearly_requests() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(request(), 1..4),
        prop::option::of(smuggling_request()),
        prop::collection::vec((any::<Index>(), 0u8..3, any::<u8>()), 0..4),
    )
        .prop_map(|(requests, smuggling, edits)| {
            let mut bytes = encode_all(&requests);
            bytes.extend(smuggling.unwrap_or_default());
            for (at, edit, byte) in edits {
                let at = at.index(bytes.len() + 1);
                match edit {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => {}
                }
            }
            bytes
        })
}

/// How hyper frames the body of a head it takes, read with hyper's own
/// parser (httparse) as the oracle: the length, `Some(None)` for chunked,
/// `None` when hyper would refuse the head (or it has both lengths: those
/// are the other properties').
fn framing_by_httparse(head: &[u8]) -> Option<Option<u64>> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(end)) if end == head.len() => {}
        _ => return None,
    }
    let values = |name: &str| {
        request
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
            .collect::<Vec<_>>()
    };
    let (lengths, codings) = (values("content-length"), values("transfer-encoding"));
    match (lengths.is_empty(), codings.last()) {
        // hyper's server: each line's value (httparse trims it) digits
        // only, no list, and every line the same.
        (false, None) => {
            let numbers: Vec<Option<u64>> = lengths
                .iter()
                .map(|n| {
                    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| n.parse().ok())
                        .flatten()
                })
                .collect();
            match numbers[..] {
                [Some(first), ..] if numbers.iter().all(|n| *n == Some(first)) => Some(Some(first)),
                _ => None,
            }
        }
        // hyper: the last coding of the last line.
        (true, Some(te)) => {
            let last = te.rsplit(',').next().unwrap_or("").trim().to_string();
            last.eq_ignore_ascii_case("chunked").then_some(None)
        }
        (true, None) => Some(Some(0)),
        (false, Some(_)) => None,
    }
}

/// Request heads near the edges of what hyper takes: the two framing
/// names in any case, with and without a colon right after them, their
/// values padded, listed, signed, in obs-text; bare LFs and bare CRs; then
/// a few bytes changed. Most are heads httparse takes; the rest are
/// filtered out by the property.
fn head_near_the_edges() -> impl Strategy<Value = Vec<u8>> {
    // Mostly what hyper takes, now and then what it refuses.
    fn mostly<T: Clone + std::fmt::Debug + 'static>(
        good: &'static [T],
        bad: &'static [T],
    ) -> impl Strategy<Value = T> + Clone {
        prop_oneof![
            6 => prop::sample::select(good),
            1 => prop::sample::select(bad),
        ]
    }
    let name = prop_oneof![
        3 => any_case("content-length"),
        3 => any_case("transfer-encoding"),
        1 => prop::sample::select(&["Host", "X-Content-Length", "Content-Lengths", "TE", "Trailer"][..])
            .prop_map(str::to_string),
    ];
    let separator = mostly(&[":", ": ", ":\t", ":  "], &[" :", "\t:"]);
    let value = prop::sample::select(
        &[
            "5",
            "0",
            "12",
            "007",
            " 3 ",
            "+5",
            "5, 5",
            "5,5",
            "5, 6",
            "-1",
            "chunked",
            "Chunked",
            "gzip, chunked",
            "chunked, gzip",
            "chunked ",
            "\tchunked",
            "ch\u{e9}unked",
            "5\r",
            "x",
        ][..],
    );
    let eol = mostly(&["\r\n", "\r\n", "\n"], &["\r"]);
    let edits = prop_oneof![
        3 => Just(Vec::new()),
        1 => prop::collection::vec((any::<Index>(), any::<u8>()), 1..2),
    ];
    (
        mostly(&["GET", "POST", "PUT", "M-SEARCH"], &["G\x01T", "G T"]),
        mostly(&["/", "/a?b=c", "*", "http://x/y"], &["/a b", "/\x7f"]),
        mostly(
            &["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"],
            &["HTTP/1.2", "HTTP/2.0", "http/1.1"],
        ),
        prop::collection::vec((name, separator, value, eol.clone()), 0..4),
        eol.clone(),
        eol,
        edits,
    )
        .prop_map(
            |(method, target, version, lines, first_eol, last_eol, edits)| {
                let mut head = format!("{method} {target} {version}{first_eol}Host: x{first_eol}");
                for (name, separator, value, eol) in lines {
                    head.push_str(&format!("{name}{separator}{value}{eol}"));
                }
                head.push_str(last_eol);
                let mut bytes = head.into_bytes();
                for (at, byte) in edits {
                    let at = at.index(bytes.len());
                    bytes[at] = byte;
                }
                bytes
            },
        )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn well_framed_requests_pass_unchanged_however_they_arrive(
        requests in prop::collection::vec(request(), 1..6),
        delivery in delivery(),
    ) {
        let input = encode_all(&requests);
        let seen = read_through(&input, &delivery)?;
        prop_assert!(
            seen == input,
            "changed:\ninput {:?}\nseen  {:?}",
            String::from_utf8_lossy(&input),
            String::from_utf8_lossy(&seen)
        );
    }

    #[test]
    fn a_request_with_both_lengths_becomes_the_stand_in_and_ends_the_reading(
        before in prop::collection::vec(request(), 0..4),
        smuggling in smuggling_request(),
        after in prop::collection::vec(request(), 0..2),
        delivery in delivery(),
    ) {
        let allowed = encode_all(&before);
        let mut input = allowed.clone();
        input.extend_from_slice(&smuggling);
        input.extend_from_slice(&encode_all(&after));
        let seen = read_through(&input, &delivery)?;
        check_passed_then_stand_in(&allowed, &input, &seen, "expected the requests before, then the stand-in")?;
    }

    #[test]
    fn any_bytes_pass_or_are_refused_the_same_however_they_arrive(
        input in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            nearly_requests(),
        ],
        delivery in delivery(),
    ) {
        let whole = read_through(&input, &Delivery::whole())?;
        check_passed_or_refused(&input, &whole)?;
        let seen = read_through(&input, &delivery)?;
        prop_assert!(
            seen == whole,
            "in pieces the guard let through something else:\ninput {:?}\nwhole {:?}\nseen  {:?}",
            String::from_utf8_lossy(&input),
            String::from_utf8_lossy(&whole),
            String::from_utf8_lossy(&seen)
        );
    }
    /// The guard finds the end of a head and its framing without httparse:
    /// on every head hyper's parser takes it must agree with it, or a body
    /// would be read as a head (or a head as a body). Each such head is
    /// sent with a body framed as hyper frames it, then a request with both
    /// lengths: the head and body pass unchanged, and the stand-in follows.
    #[test]
    fn heads_hyper_takes_are_framed_as_hyper_frames_them(
        head in head_near_the_edges(),
        body in prop::collection::vec(any::<u8>(), 0..40),
        smuggling in smuggling_request(),
        delivery in delivery(),
    ) {
        let Some(framing) = framing_by_httparse(&head) else {
            return Ok(());
        };
        let body = match framing {
            Some(length) if length as usize <= body.len() => body[..length as usize].to_vec(),
            Some(_) => return Ok(()),
            None if body.is_empty() => b"0\r\n\r\n".to_vec(),
            None => {
                let mut chunked = format!("{:x}\r\n", body.len()).into_bytes();
                chunked.extend_from_slice(&body);
                chunked.extend_from_slice(b"\r\n0\r\n\r\n");
                chunked
            }
        };
        let mut allowed = head.clone();
        allowed.extend_from_slice(&body);
        let mut input = allowed.clone();
        input.extend_from_slice(&smuggling);
        let seen = read_through(&input, &delivery)?;
        check_passed_then_stand_in(&allowed, &input, &seen, "framed otherwise than hyper frames it")?;
    }

    /// hyper ends a trailer line only at CRLF (a bare LF is one more byte
    /// of the line) and a chunked body at a line that is CRLF alone. The
    /// guard must read the trailers so too, or a request hidden in them
    /// would be judged while the one after them, which hyper reads next,
    /// would be counted as a body and pass unseen.
    #[test]
    fn trailers_end_where_hyper_ends_them(
        trailers in prop::collection::vec(trailer_line(), 0..4),
        smuggling in smuggling_request(),
        delivery in delivery(),
    ) {
        let mut allowed =
            b"POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n".to_vec();
        for line in &trailers {
            allowed.extend_from_slice(line.as_bytes());
            allowed.extend_from_slice(b"\r\n");
        }
        allowed.extend_from_slice(b"\r\n");
        let mut input = allowed.clone();
        input.extend_from_slice(&smuggling);
        let seen = read_through(&input, &delivery)?;
        check_passed_then_stand_in(&allowed, &input, &seen, "the trailers ended elsewhere than hyper ends them")?;
    }
}

/// A trailer line as hyper reads one (without its CRLF): never empty, and
/// now and then with bare LFs and what looks like a request in it.
fn trailer_line() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(
            &[
                "X-Checksum: 7",
                "\n",
                "\n\n",
                "GET /hidden HTTP/1.1",
                "Content-Length: 40",
                "Transfer-Encoding: chunked",
                "Host: x",
                " ",
            ][..],
        ),
        1..5,
    )
    .prop_map(|parts| parts.concat())
}
