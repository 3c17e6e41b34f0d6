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

/// Joins the client's and the upstream's upgraded connections once both are
/// handed over, on a task the server's shutdown waits for.
pub fn splice(conn: &Conn, client: OnUpgrade, upstream: OnUpgrade) {
    let stop = conn.stop.clone();
    let peer = conn.peer;
    conn.tasks.spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(err) => {
                tracing::debug!("upgrade for {peer} did not complete: {err}");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        tokio::select! {
            // copy_bidirectional shuts down each write half when the other
            // side's read half reaches EOF: the half-close.
            copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match copied {
                Ok((up, down)) => tracing::debug!(
                    "upgraded connection of {peer} closed: {up} bytes up, {down} bytes down"
                ),
                Err(err) => tracing::debug!("upgraded connection of {peer} ended: {err}"),
            },
            () = stop.cancelled() => tracing::debug!("closing the upgraded connection of {peer}: shutting down"),
        }
    });
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
