//! Exercise 4, NewSingleHostReverseProxy's Director: the learner's proxy
//! has the target `http://REALSERVER/base/?a=1`; what URI each request
//! reaches the real server with is read from its JSON echo.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::exercises::session::Session;
use crate::probe::Probe;

pub fn run(s: &mut Session) -> BoxFuture<'_, anyhow::Result<()>> {
    async move {
        let abc = uri_at(s, "/abc").await;
        let reached = match &abc {
            Ok(_) => "200 and the real server's echo".to_string(),
            Err(why) => why.clone(),
        };
        s.point(
            "reaches-the-target",
            "GET /abc reaches the real server (the target's scheme and host)",
            "200 and the real server's echo",
            reached,
        );
        let path = |uri: &Result<String, String>| match uri {
            Ok(uri) => uri.split('?').next().unwrap_or_default().to_string(),
            Err(why) => why.clone(),
        };
        s.point(
            "path-joined",
            "the target's path /base/ and the request's /abc join as /base/abc",
            "/base/abc",
            path(&abc),
        );
        let root = uri_at(s, "/").await;
        s.point(
            "root-joined",
            "GET / reaches the real server as /base/",
            "/base/",
            path(&root),
        );
        let merged = uri_at(s, "/abc?x=1").await;
        s.point(
            "query-merged",
            "the target's query a=1 comes first, then the request's x=1",
            "/base/abc?a=1&x=1",
            merged.unwrap_or_else(|why| why),
        );
        s.point(
            "target-query-alone",
            "a request without a query still carries the target's",
            "/base/abc?a=1",
            abc.unwrap_or_else(|why| why),
        );
        Ok(())
    }
    .boxed()
}

/// The URI the real server saw for `path`, or what came back instead.
async fn uri_at(s: &Session, path: &str) -> Result<String, String> {
    let probe = Probe::get(path).header("Accept", "application/json");
    let answer = s.send(&probe).await?;
    answer
        .json_echo()
        .map(|echo| echo.uri)
        .map_err(|_| format!("{} {:?}", answer.status.as_u16(), answer.text()))
}
