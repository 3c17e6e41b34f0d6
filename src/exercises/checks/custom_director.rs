//! Exercise 5, a custom Director (控制器): the article's section 2.2 proxy in
//! front of one real server at `/base`. The real server's JSON echo says
//! which path, which `token` header, how many body bytes and which
//! Content-Length arrived. POSTs come first; a plain GET, which makes the
//! article's Director panic, comes last.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http::Method;

use crate::exercises::session::{Session, header_values};
use crate::probe::Probe;

/// What the learner's Director puts in place of every request body.
const NEW_BODY: &str = r#"{"apple":2,"banana":3,"cherry":4}"#;

/// What the client sends: 11 bytes, not 33.
const CLIENT_BODY: &str = "hello world";

pub fn run(s: &mut Session) -> BoxFuture<'_, anyhow::Result<()>> {
    async move {
        let post = Probe::get("/dir/abc")
            .method(Method::POST)
            .body(CLIENT_BODY);
        let echo = s.echo_of(&post).await;
        s.point(
            "path-rewritten",
            "POST /dir/abc reaches the real server as /base/abc: ^/dir(.*) → $1, then the join",
            "/base/abc",
            echo.as_ref().map_or_else(Clone::clone, |e| e.uri.clone()),
        );
        s.point(
            "token-header",
            "the real server sees the header token: ssss",
            "ssss",
            echo.as_ref()
                .map_or_else(Clone::clone, |e| header_values(e, "token")),
        );
        s.point(
            "body-replaced",
            "an 11-byte POST reaches the real server with the 33-byte JSON document instead",
            format!("{} body bytes", NEW_BODY.len()),
            echo.as_ref()
                .map_or_else(Clone::clone, |e| format!("{} body bytes", e.body_bytes)),
        );

        // Chunked: the client gave no length at all, so the Director must
        // say one, and stop the request being sent chunked.
        let chunked = post.clone().header("Transfer-Encoding", "chunked");
        let echo = s.echo_of(&chunked).await;
        s.point(
            "length-correct",
            "a chunked POST reaches the real server with Content-Length: 33 and the 33 bytes",
            format!(
                "Content-Length: {}, {} body bytes",
                NEW_BODY.len(),
                NEW_BODY.len()
            ),
            echo.as_ref().map_or_else(Clone::clone, |e| {
                format!(
                    "Content-Length: {}, {} body bytes",
                    header_values(e, "content-length"),
                    e.body_bytes
                )
            }),
        );

        let get = Probe::get("/dir/abc").header("Accept", "application/json");
        let status = match s.send(&get).await {
            Ok(answer) => answer.status.as_u16().to_string(),
            Err(why) => why,
        };
        s.point(
            "get-without-body",
            "a plain GET /dir/abc, which has no body, still gets an answer",
            "200",
            status,
        );
        Ok(())
    }
    .boxed()
}
