//! Before step 1's work begins: what a reverse proxy refuses to forward at
//! all. Go's ReverseProxy forwards both of these; refusing them is lab's
//! choice.
//!
//! - CONNECT asks for a tunnel, which is a forward proxy's job (405, with
//!   `Allow` naming every other method);
//! - a request whose `Via` already names this proxy came back to it: an
//!   upstream points at the proxy itself, and forwarding would loop until
//!   the connections run out (508 Loop Detected).
//!
//! And one that Go's server answers itself, before any handler runs:
//! `OPTIONS *` (a question about the server, not a resource) gets 200 with
//! an empty body. `lab proxy` forwards it; `--like-go` answers as Go does.

use http::header;
use http::{Request, StatusCode};

use super::reverse_proxy::ReverseProxy;
use crate::body::Body;
use crate::proxy::{headers, text_response};
use crate::server;

impl ReverseProxy {
    /// The answer to a request this proxy will not forward, if it is one.
    pub(super) fn refuse(&self, req: &Request<Body>) -> Option<http::Response<Body>> {
        if self.flavour.is_go() && req.method() == http::Method::OPTIONS && req.uri().path() == "*"
        {
            return Some(http::Response::new(crate::body::empty()));
        }
        if req.method() == http::Method::CONNECT {
            let mut refused = text_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "CONNECT asks for a tunnel, which is a forward proxy's job: use `lab forward` \
                 (curl -p -x http://127.0.0.1:8080 …). This is a reverse proxy.\n",
            );
            refused
                .headers_mut()
                .insert(header::ALLOW, server::ALLOW_ALL_BUT_CONNECT);
            return Some(refused);
        }
        if headers::via_names(req.headers(), self.pseudonym.as_str()) {
            return Some(text_response(
                StatusCode::LOOP_DETECTED,
                format!(
                    "this request already passed through this proxy ({}): the upstream points back at the proxy. Check --upstream.\n",
                    self.pseudonym
                ),
            ));
        }
        None
    }
}
