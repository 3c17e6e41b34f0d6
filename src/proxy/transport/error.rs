//! Why a round trip failed, in words the ErrorHandler can show, and the
//! questions the pool asks of an error: was it TLS, the client's body, or a
//! request the connection never started to write?

use crate::tls::UpstreamTrust;

/// Why a round trip failed, in the words the ErrorHandler shows the client.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to the upstream: {0}")]
    Connect(String),
    #[error("the upstream connection failed before a response: {0}")]
    Broken(String),
    /// The client's side broke while its request was being sent (a malformed
    /// body, a client that left): the client's fault, not the upstream's.
    #[error("the request body from the client failed: {0}")]
    Request(String),
    /// The TLS handshake failed: a trust or protocol problem, not a dead upstream.
    #[error("TLS with the upstream failed: {0}")]
    Tls(String),
    /// A pooled connection, reused, failed before any byte of the response
    /// came back: the upstream had closed it (an idle timeout, a server
    /// that answers one request per connection) while the request was on
    /// its way. Nothing was answered, so an idempotent request may be sent
    /// again on another connection (RFC 9112 §9.3.1.1; Go's Transport does,
    /// see [`crate::proxy::like_go::go_may_resend`]). `unsent`: not a byte
    /// of the request was written either.
    #[error("the pooled connection was closed before any response: {detail}")]
    Stale { detail: String, unsent: bool },
}

/// What to do about a TLS failure, if `err` is one.
pub(super) fn tls_hint(
    err: &(dyn std::error::Error + 'static),
    trust: &UpstreamTrust,
) -> Option<String> {
    let tls_error = find_rustls_error(err)?;
    let hint = match tls_error {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            match trust {
                UpstreamTrust::Unconfigured => "the upstream's certificate is not trusted: \
                    no CA was given. Pass --upstream-ca FILE with its certificate (`lab realserver \
                    --tls` writes one and logs where), or --insecure-upstream in a lab"
                    .to_string(),
                UpstreamTrust::CaFile(path) => format!(
                    "the upstream's certificate is not trusted by --upstream-ca {}: is it the \
                     PEM this upstream wrote at its start (a restarted `lab realserver --tls` \
                     makes a new one), and is the URL's host one the certificate names?",
                    path.display()
                ),
                UpstreamTrust::Insecure => return None,
            }
        }
        rustls::Error::InvalidMessage(_) => {
            "the upstream did not answer with TLS: if it serves plain HTTP, write its URL \
             with http://"
                .to_string()
        }
        _ => return None,
    };
    Some(hint)
}

/// The rustls error in `err`'s causes, looking inside `io::Error`s too (whose
/// `source()` skips the error they wrap).
fn find_rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(err);
    while let Some(current) = next {
        if let Some(found) = current.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(inner) = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && let Some(found) = find_rustls_error(inner)
        {
            return Some(found);
        }
        next = current.source();
    }
    None
}

/// Whether hyper blames the request it was given (its body stream failed),
/// rather than the upstream.
pub(super) fn client_side_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(hyper_err) = e.downcast_ref::<hyper::Error>()
            && hyper_err.is_user()
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// An error and its causes on one line (`a: b: c`).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
