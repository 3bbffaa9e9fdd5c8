//! Which local process sent a request: the kernel's view of the sender's socket, from procfs
//! (`/proc/net/tcp{,6}` for the socket's inode, then the process holding it), as `ss -p` does.
//! One lookup per connection (cached by the receiver), off the async threads.
use std::{
    fs,
    net::{IpAddr, SocketAddr},
    path::Path,
};

/// The pid of the local process whose TCP socket `local` is connected to `remote` (both as
/// seen from that process), if any.
pub(crate) fn socket_owner(procfs: &Path, local: SocketAddr, remote: SocketAddr) -> Option<u32> {
    let inode = ["net/tcp", "net/tcp6"]
        .iter()
        .find_map(|table| socket_inode(&procfs.join(table), local, remote))?;
    let target = format!("socket:[{inode}]");
    for entry in fs::read_dir(procfs).ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == target.as_str()) {
                return Some(pid);
            }
        }
    }
    None
}

/// Parses `0100007F:1F90` (little-endian hex words, as the kernel prints them).
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => IpAddr::from(u32::from_str_radix(ip, 16).ok()?.to_le_bytes()),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.to_le_bytes());
            }
            IpAddr::from(bytes)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip.to_canonical(), port))
}

fn same(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

fn socket_inode(table: &Path, local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    let text = fs::read_to_string(table).ok()?;
    text.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let l = parse_addr(fields.get(1)?)?;
        let r = parse_addr(fields.get(2)?)?;
        (same(l, local) && same(r, remote))
            .then(|| fields.get(9)?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn parses_kernel_addresses() {
        assert_eq!(
            parse_addr("0100007F:1F90"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            parse_addr("00000000000000000000000001000000:0050"),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(
            parse_addr("0000000000000000FFFF00000100007F:0050"),
            Some("127.0.0.1:80".parse().unwrap()),
            "v4-mapped compares as v4"
        );
        assert_eq!(parse_addr("zz:1"), None);
    }

    #[test]
    fn finds_this_process_behind_its_own_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(server).unwrap();
        let (_accepted, peer) = listener.accept().unwrap();
        let owner = socket_owner(Path::new("/proc"), peer, server);
        assert_eq!(owner, Some(std::process::id()));
        drop(client);
        assert_eq!(
            socket_owner(Path::new("/proc"), "127.0.0.1:1".parse().unwrap(), server),
            None
        );
    }
}
