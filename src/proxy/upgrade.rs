//! Protocol upgrades through the proxy (Go's step 8, `handleUpgradeResponse`):
//! WebSocket and any other `Upgrade`.
//!
//! After a `101 Switching Protocols` the connection is no longer HTTP: the
//! proxy hands the 101 to the client, takes both raw connections back from
//! hyper, and copies bytes both ways until each side is done. When one side
//! finishes sending, the other side's write half is shut down (a half-close),
//! so a protocol that says "I'm done talking, still listening" keeps working.

use http::HeaderValue;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::server::Conn;

/// Why a 101 from the upstream cannot be passed on.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// Go: "backend tried to switch protocol %q when %q was requested".
    #[error("the upstream switched to {got:?} but the client asked for {asked:?}")]
    Mismatch { asked: String, got: String },
}

/// Checks that the upstream switched to the protocol the client asked for.
pub fn check_protocol(
    asked: Option<&HeaderValue>,
    got: Option<&HeaderValue>,
) -> Result<(), UpgradeError> {
    let text = |v: Option<&HeaderValue>| {
        v.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default()
    };
    let (asked, got) = (text(asked), text(got));
    if asked.eq_ignore_ascii_case(&got) && !asked.is_empty() {
        Ok(())
    } else {
        Err(UpgradeError::Mismatch { asked, got })
    }
}

/// After a 101, joins the client's and the upstream's upgraded connections
/// once hyper hands both over, on a task the server's shutdown waits for.
/// `label` names the pair in logs.
///
/// `keep` lives as long as the tunnel (the statistics' open-connection
/// guard: after the 101 the connection is the tunnel's, not hyper's).
pub fn bridge(
    conn: &Conn,
    client: OnUpgrade,
    upstream: OnUpgrade,
    label: String,
    keep: impl Send + 'static,
) {
    let stop = conn.stop.clone();
    let tunneled = conn.tunneled.clone();
    conn.tasks.spawn(async move {
        let _keep = keep;
        match tokio::try_join!(client, upstream) {
            Ok((client, upstream)) => {
                Conn::mark_tunnel(&tunneled);
                splice(TokioIo::new(client), TokioIo::new(upstream), stop, &label).await;
            }
            Err(err) => tracing::debug!("{label}: the upgrade did not complete: {err}"),
        }
    });
}

/// Copies bytes both ways until both sides are done, or until the server
/// shuts down. `copy_bidirectional` shuts down each write half when the
/// other side's read half reaches EOF: the half-close is passed on.
pub async fn splice<A, B>(mut a: A, mut b: B, stop: CancellationToken, label: &str)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut a, &mut b) => match copied {
            Ok((up, down)) => tracing::debug!("{label}: closed after {up} bytes up, {down} down"),
            Err(err) => tracing::debug!("{label}: ended: {err}"),
        },
        () = stop.cancelled() => {
            tracing::debug!("{label}: closed by shutdown");
            let _ = a.shutdown().await;
            let _ = b.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_must_switch_to_the_asked_protocol() {
        let ws = HeaderValue::from_static("websocket");
        let ws_upper = HeaderValue::from_static("WebSocket");
        let h2c = HeaderValue::from_static("h2c");
        assert!(check_protocol(Some(&ws), Some(&ws_upper)).is_ok());
        assert!(check_protocol(Some(&ws), Some(&h2c)).is_err());
        assert!(check_protocol(Some(&ws), None).is_err());
        assert!(check_protocol(None, None).is_err());
    }
}
