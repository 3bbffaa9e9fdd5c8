//! Fault: the wall clock is stepped back and then forward again while connections are open
//! and violations are being folded. (A time namespace cannot do this: it offsets only the
//! monotonic and boot clocks, never CLOCK_REALTIME, so the real clock is stepped, briefly, and
//! put back by a guard from the monotonic time elapsed, even if the test fails.) Spans keep
//! sane durations across the steps, violations are reported with the clock of the moment,
//! and the aggregation window closes on time with a first_seen no later than its last_seen.
use std::time::Instant;

use seam_integration_tests::{Agent, Cgroups, Workload, listen, two_tenants};

use crate::common::{
    HoldFile, connect, connection_to, duration_ns, local, network, unix_ns, weight,
};

/// How far the clock is stepped.
const STEP_S: i64 = 600;

fn realtime_ns() -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

fn set_realtime_ns(ns: i128) {
    let ts = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: a valid timespec; needs CAP_SYS_TIME (the tests run as root).
    let rc = unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) };
    assert_eq!(rc, 0, "clock_settime: {}", std::io::Error::last_os_error());
}

/// Steps the machine's wall clock; puts it back (true time = the time at creation plus the
/// monotonic time elapsed since) when asked and on drop.
struct SteppedClock {
    wall_at_start: i128,
    started: Instant,
}

impl SteppedClock {
    fn new() -> Self {
        Self {
            wall_at_start: realtime_ns(),
            started: Instant::now(),
        }
    }

    fn true_now(&self) -> i128 {
        self.wall_at_start + self.started.elapsed().as_nanos() as i128
    }

    /// Sets the clock `by_s` seconds off true time.
    fn step(&self, by_s: i64) {
        set_realtime_ns(self.true_now() + i128::from(by_s) * 1_000_000_000);
    }

    fn restore(&self) {
        set_realtime_ns(self.true_now());
    }
}

impl Drop for SteppedClock {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Crosses a -> b as `probe-<n>` until the agent's violation carries a time within a few
/// seconds of the wall clock now, i.e. the agent has noticed the step.
fn until_the_agent_follows(agent: &mut Agent, a: &str, port: u16, n: &mut u32) {
    for _ in 0..20 {
        *n += 1;
        let comm = format!("probe-{n}");
        connect(a, &comm, &local(port));
        agent.wait_until(&format!("{comm}'s violation"), |ag| {
            network(&ag.feed())
                .iter()
                .any(|v| v["caller"]["comm"] == comm)
        });
        let feed = agent.feed();
        let v = network(&feed)
            .into_iter()
            .find(|v| v["caller"]["comm"] == comm)
            .cloned()
            .unwrap();
        let skew = (unix_ns(v["time"].as_str().unwrap()) - realtime_ns()).abs();
        if skew < 5_000_000_000 {
            return;
        }
    }
    panic!(
        "the agent's times never followed the stepped clock; log:\n{}",
        agent.log()
    );
}

#[test]
fn wall_clock_stepped_back_and_forward_keeps_spans_and_windows_sane() {
    let started = Instant::now();
    let mut cgroups = Cgroups::new();
    let (a, b) = (cgroups.create("a"), cgroups.create("b"));
    let mut agent = Agent::start_with(
        &two_tenants(&cgroups, ""),
        &["--feed-spans", "--aggregate-window", "10"],
    );
    let web_a = listen("tcp-listen", Some(&a), "web-a", "127.0.0.1:0", 1);
    connect(&a, "same-a", &local(web_a.port));
    web_a.workload.finish();
    let db_b = listen("tcp-listen", Some(&b), "db-b", "127.0.0.1:0", 1000);
    let held_b = [
        listen("tcp-listen", Some(&b), "held-b1", "127.0.0.1:0", 1),
        listen("tcp-listen", Some(&b), "held-b2", "127.0.0.1:0", 1),
    ];
    let holds = [HoldFile::new("clock-1"), HoldFile::new("clock-2")];
    let hold = |i: usize| {
        Workload::start(
            Some(&a),
            &format!("held-{i}"),
            &[
                "tcp-connect",
                "--addr",
                &local(held_b[i].port),
                "--hold-file",
                holds[i].arg(),
            ],
        )
    };
    let burst = || {
        Workload::start(
            Some(&a),
            "burst",
            &["tcp-connect", "--addr", &local(db_b.port), "--count", "3"],
        )
        .finish()
    };
    let seen = |comm: &'static str| {
        move |ag: &Agent| {
            network(&ag.feed())
                .iter()
                .any(|v| v["caller"]["comm"] == comm)
        }
    };
    let mut probes = 0;

    // Connection 1 opens on true time; a burst opens an aggregation window.
    let held_1 = hold(0);
    agent.wait_until("held-1's violation", seen("held-0"));
    burst();
    agent.wait_until("the burst's first violation", seen("burst"));

    let clock = SteppedClock::new();
    clock.step(-STEP_S);
    until_the_agent_follows(&mut agent, &a, db_b.port, &mut probes);
    // The same window folds violations from the earlier clock.
    burst();
    // Connection 1 closes on the stepped-back clock.
    holds[0].release();
    held_1.finish();
    agent.wait_until("connection 1's span", |ag| {
        !connection_to(&ag.feed(), held_b[0].port).is_empty()
    });
    // Connection 2 opens on it.
    let held_2 = hold(1);
    agent.wait_until("held-2's violation", seen("held-1"));

    clock.restore();
    until_the_agent_follows(&mut agent, &a, db_b.port, &mut probes);
    // Connection 2 closes on true time.
    holds[1].release();
    held_2.finish();
    agent.wait_until("connection 2's span", |ag| {
        !connection_to(&ag.feed(), held_b[1].port).is_empty()
    });
    // The window opened before the steps closes on time.
    agent.wait_until("the burst's aggregate", |ag| {
        network(&ag.feed())
            .iter()
            .any(|v| v["caller"]["comm"] == "burst" && v.get("aggregate").is_some())
    });
    let stats = agent.stop();
    drop(clock);
    let elapsed = started.elapsed().as_nanos() as i128;

    let feed = agent.feed();
    for (i, listener) in held_b.iter().enumerate() {
        let spans = connection_to(&feed, listener.port);
        assert_eq!(spans.len(), 1, "{spans:#?}");
        let d = duration_ns(spans[0]);
        assert!(
            (0..=elapsed).contains(&d),
            "connection {} lasted {d} ns across the steps: {:#}",
            i + 1,
            spans[0]
        );
        assert_eq!(spans[0]["end_reason"], "closed", "{:#}", spans[0]);
    }
    for span in crate::common::spans(&feed) {
        if span["end"].is_string() {
            let d = duration_ns(span);
            assert!((0..=elapsed).contains(&d), "span lasted {d} ns: {span:#}");
        }
    }
    let flagged = network(&feed);
    let count = |comm: &str| -> u64 {
        flagged
            .iter()
            .filter(|v| v["caller"]["comm"] == comm)
            .map(|v| weight(v))
            .sum()
    };
    assert_eq!(count("held-0"), 1);
    assert_eq!(count("held-1"), 1);
    assert_eq!(count("burst"), 6, "every burst connection, folded or not");
    assert_eq!(count("same-a"), 0, "same tenant is not flagged");
    for n in 1..=probes {
        assert_eq!(count(&format!("probe-{n}")), 1);
    }
    for v in &flagged {
        assert_eq!(v["caller"]["tenant"], "a", "{v:#}");
        assert_eq!(v["actual_tenant"], "b", "{v:#}");
        if let Some(agg) = v.get("aggregate") {
            let (first, last) = (
                unix_ns(agg["first_seen"].as_str().unwrap()),
                unix_ns(agg["last_seen"].as_str().unwrap()),
            );
            assert!(first <= last, "aggregate runs backwards: {v:#}");
        }
    }
    let uptime = stats["uptime_s"].as_f64().unwrap();
    assert!(
        uptime > 0.0 && uptime * 1e9 < elapsed as f64,
        "uptime is monotonic: {stats}"
    );
}
