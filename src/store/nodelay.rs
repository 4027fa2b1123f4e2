//! Nagle's algorithm off on the process's sockets to PostgreSQL.
//!
//! sqlx 0.9 no longer sets TCP_NODELAY on its PostgreSQL sockets (sqlx issue
//! 4335) and offers no hook to reach the socket. Any statement longer than
//! one TCP segment then waits for PostgreSQL's delayed ACK (40 ms on Linux)
//! before its last segment leaves: measured here as a group of 46 or more
//! creates (past the 64 KiB loopback segment) taking 50–100 ms instead of
//! 8 ms; across a real network (1,460-byte segments) an ordinary insert
//! would pay it. libpq, and so pgbench and psql, always set it.
//!
//! Each new pooled connection calls [`disable_towards`] with the server's
//! port: every TCP socket of this process whose peer has that port gets
//! TCP_NODELAY. Sockets are found through /proc/self/fd (Linux only; other
//! systems keep sqlx's behaviour), so sqlx's own socket needs no hook.

/// Sets TCP_NODELAY on each TCP socket of this process connected to `port`.
/// Best effort: a socket that closes meanwhile is skipped.
#[cfg(target_os = "linux")]
pub fn disable_towards(port: u16) {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in entries.flatten() {
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        let fd = entry.file_name().to_str().and_then(|n| n.parse().ok());
        if let (true, Some(fd)) = (is_socket, fd)
            && peer_port(fd) == Some(port)
        {
            set_nodelay(fd);
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn disable_towards(_port: u16) {}

/// The peer's port of a connected IPv4 or IPv6 socket.
#[cfg(target_os = "linux")]
fn peer_port(fd: libc::c_int) -> Option<u16> {
    // SAFETY: getpeername writes at most `len` bytes into the zeroed
    // storage; a stale or reused descriptor number only makes it fail
    // (EBADF, ENOTSOCK, ENOTCONN), as no Rust object owns it here.
    let mut address: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let got = unsafe {
        libc::getpeername(
            fd,
            (&raw mut address).cast::<libc::sockaddr>(),
            &raw mut len,
        )
    };
    if got != 0 {
        return None;
    }
    // SAFETY: the family says which of the two layouts the kernel wrote.
    match libc::c_int::from(address.ss_family) {
        libc::AF_INET => {
            let v4 = unsafe { &*(&raw const address).cast::<libc::sockaddr_in>() };
            Some(u16::from_be(v4.sin_port))
        }
        libc::AF_INET6 => {
            let v6 = unsafe { &*(&raw const address).cast::<libc::sockaddr_in6>() };
            Some(u16::from_be(v6.sin6_port))
        }
        _ => None,
    }
}

#[cfg(target_os = "linux")]
fn set_nodelay(fd: libc::c_int) {
    let on: libc::c_int = 1;
    // SAFETY: passes a pointer to a live c_int of the size given; on a
    // descriptor that closed meanwhile the call fails and is ignored.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&raw const on).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn nodelay(stream: &std::net::TcpStream) -> bool {
        stream.nodelay().unwrap()
    }

    #[test]
    fn only_sockets_to_the_port_get_nodelay() {
        let database = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to_database = std::net::TcpStream::connect(database.local_addr().unwrap()).unwrap();
        let to_other = std::net::TcpStream::connect(other.local_addr().unwrap()).unwrap();
        assert!(!nodelay(&to_database) && !nodelay(&to_other));

        disable_towards(database.local_addr().unwrap().port());

        assert!(nodelay(&to_database));
        assert!(!nodelay(&to_other));
    }
}
