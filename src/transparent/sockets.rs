//! What a transparent proxy needs from the kernel, socket by socket.
//!
//! - **Where was the client going?** With `redirect` (NAT) the connection
//!   arrives addressed to the proxy, and conntrack still knows the address
//!   it was rewritten from: `getsockopt(SOL_IP, SO_ORIGINAL_DST)`. With
//!   `tproxy` nothing was rewritten: the accepted socket's own local
//!   address *is* the original destination (`getsockname`).
//! - **Accepting connections for other addresses** (tproxy): the listener
//!   needs `IP_TRANSPARENT`, or the kernel will not hand it a connection
//!   addressed to 198.51.100.2.
//! - **Speaking as the client** (tproxy): the outbound socket also gets
//!   `IP_TRANSPARENT`, which lets it bind to an address that is not the
//!   gateway's (the client's), so the real server sees the client.
//!
//! Both options need CAP_NET_ADMIN (root, or root of the user namespace
//! that owns the network namespace).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::mode::Mode;

/// A listener on `addr` that accepts intercepted connections in `mode`.
/// Call it on a thread inside the gateway namespace.
pub fn listen(addr: SocketAddr, mode: Mode) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    if mode == Mode::Tproxy {
        set_transparent(&socket)?;
    }
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Where `stream`'s client was going, in `mode`.
pub fn original_destination(stream: &TcpStream, mode: Mode) -> io::Result<SocketAddr> {
    match mode {
        Mode::Tproxy => stream.local_addr(),
        Mode::Redirect => so_original_dst(stream),
    }
}

/// `getsockopt(SOL_IP, SO_ORIGINAL_DST)`: the destination before NAT.
fn so_original_dst(stream: &TcpStream) -> io::Result<SocketAddr> {
    // SAFETY: a zeroed sockaddr_in is a valid value to be overwritten.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `addr`.
    let result = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_IP,
            libc::SO_ORIGINAL_DST,
            (&raw mut addr).cast(),
            &mut len,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    let ip = Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
    Ok(SocketAddr::V4(SocketAddrV4::new(
        ip,
        u16::from_be(addr.sin_port),
    )))
}

/// Opens the proxy's connection to `destination`, from the gateway's own
/// address (redirect) or from the client's (`as_client`, tproxy).
pub async fn connect(
    destination: SocketAddr,
    as_client: Option<SocketAddr>,
) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(client) = as_client {
        set_transparent(&socket)?;
        // Port 0: the client's address, a port of the kernel's choosing
        // (the client's own port is in use by the client's connection).
        socket.bind(SocketAddr::new(client.ip(), 0))?;
    }
    let stream = socket.connect(destination).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn set_transparent(socket: &TcpSocket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads an int from a valid pointer.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_IP,
            libc::IP_TRANSPARENT,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
