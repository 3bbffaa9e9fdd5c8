//! Ring-buffer records as the probes write them, for the pipeline benchmark: TCP connections
//! (both ends established, both closes), file opens (first sight: with their full path) and
//! process executions, between a few tenants' cgroups, a share of them crossing tenants.
use seam_common::{
    AF_INET, AccessClass, COMM_LEN, Event, EventInfo, EventKind, FILE_BUF, FileHead, FileSyscall,
    PATH_LIMIT, PathMeta, ProcessData, TcpCloseData, TcpStateData, fmode, tcp_state,
};

/// One tenant of the synthetic node.
#[derive(Clone, Debug)]
pub(crate) struct Tenant {
    pub cgroup_id: u64,
    /// Its directory (owned by it in the rules).
    pub dir: String,
}

fn bytes_of<T>(value: &T) -> Vec<u8> {
    // SAFETY: reading the bytes of a #[repr(C)] value without padding holes (asserted in
    // seam_common).
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

fn info(kind: EventKind, pid: u32, cgroup_id: u64, time_ns: u64) -> EventInfo {
    let mut comm = [0u8; COMM_LEN];
    let name = format!("app-{}", pid % 100);
    comm[..name.len()].copy_from_slice(name.as_bytes());
    EventInfo {
        kind: kind as u32,
        pid,
        tid: pid,
        uid: 1000,
        time_ns,
        cgroup_id,
        comm,
    }
}

fn v4(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[127, 0, 0, last]);
    a
}

/// What one generated TCP connection was, for the application spans that go with it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectionMeta {
    pub client_pid: u32,
    pub client_tenant: usize,
    pub server_port: u16,
    /// Boot time of the client's established event.
    pub start_ns: u64,
}

/// Generates records; deterministic (a counter, not a random source).
pub(crate) struct Generator {
    tenants: Vec<Tenant>,
    n: u64,
    time_ns: u64,
    /// One connection in `cross` crosses tenants (and one file open in `cross`).
    cross: u64,
    last: Option<ConnectionMeta>,
}

/// Processes per tenant.
const PIDS: u32 = 16;

impl Generator {
    pub(crate) fn new(tenants: Vec<Tenant>, cross: u64) -> Self {
        Self {
            tenants,
            n: 0,
            time_ns: 1_000_000_000,
            cross: cross.max(1),
            last: None,
        }
    }

    /// Records timed from boot time `ns` on (e.g. now, so the agent's windows apply as live).
    pub(crate) fn starting_at(mut self, ns: u64) -> Self {
        self.time_ns = ns;
        self
    }

    /// The connection [`Generator::connection`] generated last.
    pub(crate) fn last_connection(&self) -> Option<ConnectionMeta> {
        self.last
    }

    fn pid(&self, tenant: usize, i: u64) -> u32 {
        10_000 + tenant as u32 * 100 + (i % u64::from(PIDS)) as u32
    }

    /// An exec for every process of every tenant (the processes are known from then on).
    pub(crate) fn execs(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for t in 0..self.tenants.len() {
            for i in 0..u64::from(PIDS) {
                self.time_ns += 1_000;
                let e = Event {
                    info: info(
                        EventKind::Exec,
                        self.pid(t, i),
                        self.tenants[t].cgroup_id,
                        self.time_ns,
                    ),
                    data: ProcessData {
                        ppid: 1,
                        exit_code: 0,
                    },
                };
                out.push(bytes_of(&e));
            }
        }
        out
    }

    /// The four records of one TCP connection (client and server established, both closes).
    pub(crate) fn connection(&mut self) -> [Vec<u8>; 4] {
        self.n += 1;
        let k = self.tenants.len();
        let client_t = (self.n as usize) % k;
        let server_t = if self.n.is_multiple_of(self.cross) {
            (client_t + 1) % k
        } else {
            client_t
        };
        let pid = self.pid(client_t, self.n);
        let (client_cg, server_cg) = (
            self.tenants[client_t].cgroup_id,
            self.tenants[server_t].cgroup_id,
        );
        let cport = 20_000 + (self.n % 40_000) as u16;
        let sport = 5_000 + server_t as u16;
        let caddr = v4(1);
        let saddr = v4(1);
        let cookie = self.n * 2;
        let state = |cookie, local: [u8; 16], remote: [u8; 16], lp, rp, old, new| TcpStateData {
            cookie,
            netns: 4_026_531_840,
            saddr: local,
            daddr: remote,
            sport: lp,
            dport: rp,
            family: AF_INET,
            oldstate: old,
            newstate: new,
            _pad: [0; 4],
        };
        let mut t = || {
            self.time_ns += 2_000;
            self.time_ns
        };
        let client_est = Event {
            info: info(EventKind::TcpState, pid, client_cg, t()),
            data: state(
                cookie,
                caddr,
                saddr,
                cport,
                sport,
                tcp_state::SYN_SENT,
                tcp_state::ESTABLISHED,
            ),
        };
        let mut server_info = info(EventKind::TcpState, 0, server_cg, t());
        server_info.comm = [0; COMM_LEN];
        let server_est = Event {
            info: server_info,
            data: state(
                cookie + 1,
                saddr,
                caddr,
                sport,
                cport,
                tcp_state::SYN_RECV,
                tcp_state::ESTABLISHED,
            ),
        };
        let close = |cookie, cg, local, remote, lp, rp, old, time| {
            let mut i = info(EventKind::TcpClose, 0, cg, time);
            i.comm = [0; COMM_LEN];
            Event {
                info: i,
                data: TcpCloseData {
                    state: state(cookie, local, remote, lp, rp, old, tcp_state::CLOSE),
                    bytes_received: 100,
                    bytes_sent: 25,
                    bytes_retrans: 0,
                    segs_in: 4,
                    segs_out: 5,
                },
            }
        };
        let server_close = close(
            cookie + 1,
            server_cg,
            saddr,
            caddr,
            sport,
            cport,
            tcp_state::FIN_WAIT2,
            t(),
        );
        let client_close = close(
            cookie,
            client_cg,
            caddr,
            saddr,
            cport,
            sport,
            tcp_state::LAST_ACK,
            t(),
        );
        self.last = Some(ConnectionMeta {
            client_pid: pid,
            client_tenant: client_t,
            server_port: sport,
            start_ns: client_est.info.time_ns,
        });
        [
            bytes_of(&client_est),
            bytes_of(&server_est),
            bytes_of(&server_close),
            bytes_of(&client_close),
        ]
    }

    /// One file open (as the probe sends a first sight: the whole path, leaf first).
    pub(crate) fn open(&mut self) -> Vec<u8> {
        self.n += 1;
        let k = self.tenants.len();
        let caller = (self.n as usize) % k;
        let owner = if self.n.is_multiple_of(self.cross) {
            (caller + 1) % k
        } else {
            caller
        };
        self.time_ns += 3_000;
        let pid = self.pid(caller, self.n);
        let path = format!(
            "{}/data/d{}/f{}",
            self.tenants[owner].dir,
            self.n % 8,
            self.n % 64
        );
        let mut buf = Vec::new();
        for part in path.trim_start_matches('/').rsplit('/') {
            buf.extend_from_slice(part.as_bytes());
            buf.push(0);
        }
        let head = FileHead {
            ret: 3,
            flags: 0,
            f_mode: fmode::READ,
            op: FileSyscall::Open as u8,
            npaths: 1,
            _pad: [0; 6],
            paths: [
                PathMeta {
                    base_len: buf.len() as u16,
                    user_len: 0,
                    truncated: 0,
                    resolved: 1,
                    rooted: 1,
                    _pad: 0,
                },
                PathMeta::default(),
            ],
            dir_ino: 0,
            generation: 0,
            dir_dev: 0,
            class: AccessClass::Read as u8,
            _pad2: [0; 3],
        };
        let mut out = bytes_of(&info(
            EventKind::File,
            pid,
            self.tenants[caller].cgroup_id,
            self.time_ns,
        ));
        out.extend_from_slice(&bytes_of(&head));
        out.extend_from_slice(&buf[..buf.len().min(FILE_BUF + PATH_LIMIT)]);
        out
    }
}
