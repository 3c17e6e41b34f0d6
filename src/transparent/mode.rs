//! The two ways `lab transparent`'s gateway can hand a connection to the
//! proxy, named once for every part that differs by them.

use std::str::FromStr;

/// How the gateway hands the client's connections to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// nftables `redirect` (NAT) and `SO_ORIGINAL_DST`.
    Redirect,
    /// nftables `tproxy` and `IP_TRANSPARENT`: the client's address kept.
    Tproxy,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Redirect => "redirect",
            Mode::Tproxy => "tproxy",
        })
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "redirect" => Ok(Mode::Redirect),
            "tproxy" => Ok(Mode::Tproxy),
            other => Err(format!("{other:?} is not a mode: redirect or tproxy")),
        }
    }
}
