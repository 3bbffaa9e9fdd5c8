//! The exposition parses line by line and carries every documented metric.
use std::{collections::BTreeMap, time::Duration};

use super::{DropReason, Metrics, PipelineMetrics, receive::RequestError, serve::Listener};
use crate::model::{
    loss::{LossSubject, SinkId},
    vocab::{AccessClass, EventKind, JoinOutcome, ProbeFamily, Severity, Signal},
};

/// `name{labels} value` samples of an OpenMetrics text exposition; panics on a malformed line.
pub(crate) fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "exposition ends with # EOF");
    for line in lines {
        if let Some(meta) = line.strip_prefix("# ") {
            let kind = meta.split_whitespace().next().unwrap_or("");
            assert!(
                ["TYPE", "HELP", "UNIT", "EOF"].contains(&kind),
                "bad comment line {line:?}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name {line:?}"
        );
        if name_end < series.len() {
            let labels = &series[name_end..];
            assert!(labels.ends_with('}'), "unterminated labels {line:?}");
            for pair in labels[1..labels.len() - 1]
                .split("\",")
                .filter(|p| !p.is_empty())
            {
                let (key, value) = pair.split_once('=').unwrap_or_else(|| panic!("{line:?}"));
                assert!(
                    key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{line:?}"
                );
                assert!(value.starts_with('"'), "{line:?}");
            }
        }
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "duplicate {line:?}"
        );
    }
    samples
}

#[test]
fn exposition_parses_and_carries_every_metric() {
    let metrics = std::sync::Arc::new(Metrics::new());
    let mut recorder = PipelineMetrics::new(metrics.clone());
    for _ in 0..3 {
        recorder.event(EventKind::Connect);
    }
    recorder.event(EventKind::Exec);
    recorder.decode_error();
    recorder.span();
    recorder.lost(&LossSubject::Probe(ProbeFamily::SockAddr), 4);
    recorder.lost(
        &LossSubject::Sink {
            sink: SinkId::Webhook(1),
            reason: DropReason::RetriesExhausted,
        },
        2,
    );
    metrics
        .output
        .violations()
        .count("cross-tenant-network", Severity::High, "a", "b \"quoted\"");
    recorder.evaluation(Duration::from_micros(3));
    recorder.tenant_cgroups(2);
    recorder.open_spans(3, 4);
    recorder.app_span(JoinOutcome::Unmatched);
    recorder.file_opens_counted("a", "b", AccessClass::Create, 6);
    recorder.file_silences(1);
    metrics.kernel.set_live_hooks(&[
        "cgroup/connect4".into(),
        "tp_btf/inet_sock_set_state".into(),
    ]);
    let sink = metrics.output.sink(SinkId::Webhook(0));
    sink.queue_depth.set(5);
    sink.dropped(DropReason::QueueFull).inc_by(7);
    metrics
        .output
        .otlp_dropped(Signal::Logs, DropReason::Rejected)
        .inc();
    metrics.output.otlp_exported(Signal::Traces).inc_by(2);
    metrics.receive.error(RequestError::TooLarge).inc();
    metrics.receive.received().inc_by(3);
    metrics.listeners.unauthorized(Listener::OtlpGrpc).inc();
    metrics.chaos.record(&[("dns-a-to-b", true)], false);

    let samples = parse(&metrics.encode());
    let get = |series: &str| {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("{series} missing from {samples:#?}"))
    };
    assert_eq!(get("seam_events_total{kind=\"connect\"}"), 3.0);
    assert_eq!(get("seam_events_total{kind=\"exec\"}"), 1.0);
    assert_eq!(get("seam_decode_errors_total"), 1.0);
    assert_eq!(get("seam_spans_total"), 1.0);
    assert_eq!(get("seam_events_lost_total{probe=\"sock_addr\"}"), 4.0);
    assert_eq!(
        get("seam_lost_total{source=\"ring_buffer\",probe=\"sock_addr\"}"),
        4.0
    );
    assert_eq!(
        get("seam_lost_total{source=\"feed\",probe=\"webhook-1/retries_exhausted\"}"),
        2.0
    );
    assert_eq!(
        get(
            "seam_violations_total{rule=\"cross-tenant-network\",severity=\"high\",from_tenant=\"a\",to_tenant=\"b \\\"quoted\\\"\"}"
        ),
        1.0
    );
    assert_eq!(get("seam_rule_evaluation_seconds_count"), 1.0);
    assert_eq!(
        get("seam_rule_evaluation_seconds_bucket{le=\"0.000004\"}"),
        1.0
    );
    assert_eq!(
        get("seam_rule_evaluation_seconds_bucket{le=\"0.000001\"}"),
        0.0
    );
    assert_eq!(get("seam_tenant_cgroups"), 2.0);
    assert_eq!(get("seam_open_spans{kind=\"connection\"}"), 3.0);
    assert_eq!(get("seam_open_spans{kind=\"process\"}"), 4.0);
    assert_eq!(get("seam_app_spans_total{outcome=\"unmatched\"}"), 1.0);
    assert_eq!(
        get("seam_file_opens_counted_total{tenant=\"a\",owner=\"b\",op=\"create\"}"),
        6.0
    );
    assert_eq!(get("seam_file_silences_total"), 1.0);
    assert_eq!(get("seam_hooks_live{hook=\"cgroup/connect4\"}"), 1.0);
    assert_eq!(
        get("seam_hooks_live{hook=\"tp_btf/inet_sock_set_state\"}"),
        1.0
    );
    assert_eq!(get("seam_feed_queue_depth{sink=\"webhook-0\"}"), 5.0);
    assert_eq!(
        get("seam_feed_dropped_total{sink=\"webhook-0\",reason=\"queue_full\"}"),
        7.0
    );
    // Every reason is exported at zero from the start, so alerts need no absent().
    for reason in DropReason::NAMES {
        get(&format!(
            "seam_feed_dropped_total{{sink=\"webhook-0\",reason=\"{reason}\"}}"
        ));
    }
    assert_eq!(
        get("seam_feed_dropped_total{sink=\"webhook-0\",reason=\"retries_exhausted\"}"),
        0.0
    );
    assert_eq!(get("seam_violations_folded_total"), 0.0);
    assert_eq!(
        get("seam_otlp_dropped_total{signal=\"logs\",reason=\"rejected\"}"),
        1.0
    );
    assert_eq!(get("seam_otlp_exported_total{signal=\"traces\"}"), 2.0);
    assert_eq!(
        get("seam_otlp_receive_errors_total{reason=\"too_large\"}"),
        1.0
    );
    assert_eq!(get("seam_otlp_received_spans_total"), 3.0);
    assert_eq!(
        get("seam_listener_unauthorized_total{listener=\"otlp_grpc\"}"),
        1.0
    );
    assert_eq!(get("seam_chaos_attempt_seen{attempt=\"dns-a-to-b\"}"), 1.0);
    assert_eq!(get("seam_chaos_runs_total{outcome=\"failed\"}"), 1.0);
}

#[test]
fn parser_rejects_malformed_lines() {
    for bad in [
        "x 1\n",
        "bad-name 1\n# EOF",
        "x{a=\"1\" 1\n# EOF",
        "x one\n# EOF",
    ] {
        assert!(std::panic::catch_unwind(|| parse(bad)).is_err(), "{bad:?}");
    }
}
