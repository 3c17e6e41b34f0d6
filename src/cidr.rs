//! Address ranges (`127.0.0.0/8`, `10.0.0.7`, `::1/128`) for the two
//! questions of trust a proxy asks about the address that connected to it:
//! may this client use the forward proxy at all (`lab forward --allow`), and
//! is this peer a proxy whose `X-Forwarded-For` may be believed (`lab proxy
//! --trusted-proxy`)?
//!
//! Why a proxy must ask: a forward proxy that serves anyone who reaches it
//! is an open proxy (other people's traffic leaves from your address), and
//! `X-Forwarded-For` is just text a client can write: believing it from
//! anyone lets every client choose its own address for rate limits and
//! consistent hashing.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address range: an address and how many leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The loopback ranges, `127.0.0.0/8` and `::1/128`: the default clients
    /// of the forward proxy.
    pub const LOOPBACK: [Cidr; 2] = [
        Cidr {
            addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
            prefix: 8,
        },
        Cidr {
            addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            prefix: 128,
        },
    ];

    /// Whether `ip` is in the range. An IPv4 address written as IPv6
    /// (`::ffff:127.0.0.1`, what a dual-stack listener sees) counts as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// Whether every address of the range is a loopback address.
    pub fn is_loopback_only(&self) -> bool {
        match self.addr {
            IpAddr::V4(net) => self.prefix >= 8 && net.octets()[0] == 127,
            IpAddr::V6(net) => self.prefix == 128 && net.is_loopback(),
        }
    }

    /// Whether any of `ranges` contains `ip`.
    pub fn any_contains(ranges: &[Cidr], ip: IpAddr) -> bool {
        ranges.iter().any(|range| range.contains(ip))
    }

    /// `ranges` as `a, b, c` for messages.
    pub fn list(ranges: &[Cidr]) -> String {
        let names: Vec<String> = ranges.iter().map(Cidr::to_string).collect();
        names.join(", ")
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// `ADDRESS/BITS`, or a bare address (all its bits).
    fn from_str(s: &str) -> Result<Cidr, String> {
        let hint = "write an address range such as 10.0.0.0/8, 192.168.1.7 or ::1/128";
        let (addr, bits) = match s.trim().split_once('/') {
            Some((addr, bits)) => (addr, Some(bits)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?}: {addr:?} is not an IP address; {hint}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        // IPv4 clients are matched against IPv4 ranges (a dual-stack
        // listener's `::ffff:a.b.c.d` included): a range written as mapped
        // IPv6 is the IPv4 range it maps.
        let mapped = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped(),
            IpAddr::V4(_) => None,
        };
        let prefix = match bits {
            None => max,
            Some(bits) => match bits.parse::<u8>() {
                Ok(n) if n <= max && !bits.starts_with('+') => n,
                _ => {
                    return Err(format!(
                        "{s:?}: the prefix length must be a number from 0 to {max}; {hint}"
                    ));
                }
            },
        };
        match mapped {
            Some(v4) if prefix >= 96 => Ok(Cidr {
                addr: IpAddr::V4(v4),
                prefix: prefix - 96,
            }),
            _ => Ok(Cidr { addr, prefix }),
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_contain_what_their_prefix_says() {
        assert!(cidr("10.0.0.0/8").contains(ip("10.200.3.4")));
        assert!(!cidr("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(cidr("192.168.1.7").contains(ip("192.168.1.7")));
        assert!(!cidr("192.168.1.7").contains(ip("192.168.1.8")));
        assert!(cidr("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(cidr("::1/128").contains(ip("::1")));
        assert!(cidr("fd00::/8").contains(ip("fd12::1")));
        assert!(
            !cidr("fd00::/8").contains(ip("127.0.0.1")),
            "families never mix"
        );
    }

    #[test]
    fn ipv4_written_as_ipv6_counts_as_ipv4() {
        assert!(Cidr::any_contains(&Cidr::LOOPBACK, ip("::ffff:127.0.0.1")));
        assert!(Cidr::any_contains(&Cidr::LOOPBACK, ip("127.9.9.9")));
        assert!(!Cidr::any_contains(&Cidr::LOOPBACK, ip("192.0.2.1")));
        // A range written as mapped IPv6 is its IPv4 range.
        assert_eq!(cidr("::ffff:10.0.0.0/104"), cidr("10.0.0.0/8"));
        assert!(cidr("::ffff:10.0.0.0/104").contains(ip("10.1.2.3")));
        assert!(cidr("127.0.0.0/8").is_loopback_only());
        assert!(cidr("::1").is_loopback_only());
        assert!(!cidr("0.0.0.0/0").is_loopback_only());
        assert!(!cidr("127.0.0.0/7").is_loopback_only());
    }

    #[test]
    fn bad_ranges_say_what_to_write() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10/8",
            "x",
            "1.2.3.4/+8",
            "1.2.3.4/-1",
        ] {
            let err = bad.parse::<Cidr>().unwrap_err();
            assert!(err.contains("such as"), "{bad}: {err}");
        }
        assert_eq!(cidr(" 10.1.0.0/16 ").to_string(), "10.1.0.0/16");
    }
}
