//! Talking to the agent's `--listen` endpoint: plain HTTP/1.1 GETs and the metrics exposition
//! parsed into `series -> value`.
use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use crate::Agent;

/// GET `path` from `addr`: (status, body).
pub fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad response {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Samples of an OpenMetrics text exposition: `name{labels}` -> value.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The agent's `--listen` address, from its ready file.
pub fn listen_addr(agent: &Agent) -> String {
    let ready = agent.ready();
    ready["listen"]
        .as_str()
        .unwrap_or_else(|| panic!("no listen address in {ready}"))
        .to_owned()
}

/// The agent's metrics now.
pub fn scrape(agent: &Agent) -> BTreeMap<String, f64> {
    let (status, body) = get(&listen_addr(agent), "/metrics");
    assert_eq!(status, 200, "{body}");
    parse_metrics(&body)
}

/// One series of [`scrape`] (0 when absent).
pub fn metric(agent: &Agent, series: &str) -> f64 {
    scrape(agent).get(series).copied().unwrap_or(0.0)
}
