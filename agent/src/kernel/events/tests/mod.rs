//! Decoding ring-buffer records: fixtures of each kind, and hostile bytes ([`fuzz`]).
mod fuzz;

use super::*;

fn bytes_of<T>(value: &T) -> Vec<u8> {
    // SAFETY: reading the bytes of a #[repr(C)] value for a test fixture.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

fn decode_test(bytes: &[u8]) -> Result<KernelEvent, DecodeError> {
    decode(bytes, true)
}

fn info(kind: EventKind) -> EventInfo {
    let mut comm = [0u8; COMM_LEN];
    comm[..6].copy_from_slice(b"client");
    EventInfo {
        kind: kind as u32,
        pid: 42,
        tid: 43,
        uid: 1000,
        time_ns: 7,
        cgroup_id: 99,
        comm,
    }
}

#[test]
fn decodes_connect_with_mapped_ipv6() {
    let mut daddr = [0u8; 16];
    daddr[10] = 0xff;
    daddr[11] = 0xff;
    daddr[12..].copy_from_slice(&[127, 0, 0, 1]);
    let event = Event {
        info: info(EventKind::Connect),
        data: SockAddrData {
            cookie: 5,
            daddr,
            dport: 8080,
            family: AF_INET6,
            protocol: IPPROTO_TCP,
            _pad: [0; 3],
        },
    };
    let decoded = decode_test(&bytes_of(&event)).unwrap();
    assert_eq!(decoded.header.comm.as_str(), "client");
    assert_eq!(decoded.header.pid, 42);
    assert_eq!(
        decoded.kind,
        KernelEventKind::SockAddr {
            sendmsg: false,
            cookie: 5,
            protocol: Some(Transport::Tcp),
            destination: "127.0.0.1:8080".parse().unwrap(),
        }
    );
}

#[test]
fn a_comm_is_borrowed_when_utf8_and_escaped_otherwise() {
    let plain = Comm::from("worker");
    assert!(matches!(
        plain.as_str(),
        std::borrow::Cow::Borrowed("worker")
    ));
    let mut raw = [0u8; COMM_LEN];
    raw[..4].copy_from_slice(b"a\xffb\xc3");
    assert_eq!(Comm(raw).as_str(), "a\\xffb\\xc3");
    assert_ne!(Comm(raw), Comm::from("a\u{fffd}b\u{fffd}"));
}

#[test]
fn short_and_unknown_records_are_errors() {
    let event = Event {
        info: info(EventKind::TcpState),
        data: 0u8,
    };
    assert!(matches!(
        decode_test(&bytes_of(&event)),
        Err(DecodeError::Truncated {
            kind: "tcp_state",
            ..
        })
    ));
    let mut bad = info(EventKind::Exec);
    bad.kind = 12345;
    assert_eq!(
        decode_test(&bytes_of(&bad)),
        Err(DecodeError::UnknownKind(12345))
    );
    assert!(matches!(
        decode_test(&[1, 2, 3]),
        Err(DecodeError::Truncated { .. })
    ));
}
