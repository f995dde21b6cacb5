//! Reasoning across the attempts of a call: what the pattern of failures
//! shows that a single failure cannot.

use std::time::Duration;

use crate::attempt::{AttemptOutcome, AttemptRecord};
use crate::diagnosis::Diagnosis;
use crate::format::DisplayDuration;
use crate::phase::Phase;

/// A refusal this fast comes from the host itself, not from a network path
/// that loses packets.
const FAST_REFUSAL: Duration = Duration::from_millis(50);

/// An attempt that ran this share of its limit or more ran until the limit.
const AT_LIMIT: f64 = 0.95;

/// A response that took this share of the limit or more was close to it.
const NEAR_LIMIT: f64 = 0.8;

/// The conclusion drawn from the attempts of a failed call together.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Finding {
    /// A better diagnosis than the last attempt's alone, if the pattern gives
    /// one.
    pub(crate) diagnosis: Option<Diagnosis>,
    /// The phase that goes with `diagnosis`, when it is not the last
    /// attempt's.
    pub(crate) phase: Option<Phase>,
    /// One lowercase clause that states the evidence.
    pub(crate) evidence: Option<String>,
}

/// Looks for a pattern in `history`, the attempts of a call that failed.
///
/// `recent_slowest` is the slowest response time seen recently from the same
/// host and port, if the middleware has seen any.
pub(crate) fn assess(history: &[AttemptRecord], recent_slowest: Option<Duration>) -> Finding {
    if history.is_empty() {
        return Finding::default();
    }
    if let Some(finding) = all_refused_fast(history) {
        return finding;
    }
    if let Some(finding) = last_attempt_cut_short(history) {
        return finding;
    }
    if let Some(finding) = timeouts_near_known_latency(history, recent_slowest) {
        return finding;
    }
    if let Some(finding) = all_failed_alike(history) {
        return finding;
    }
    Finding::default()
}

fn failed(record: &AttemptRecord) -> Option<(Phase, Diagnosis, bool)> {
    match record.outcome {
        AttemptOutcome::Failed {
            phase,
            diagnosis,
            timed_out,
        } => Some((phase, diagnosis, timed_out)),
        _ => None,
    }
}

fn all_refused_fast(history: &[AttemptRecord]) -> Option<Finding> {
    let every_refusal_fast = history.iter().all(|record| {
        matches!(failed(record), Some((_, Diagnosis::ConnectionRefused, _)))
            && record.duration < FAST_REFUSAL
    });
    if !every_refusal_fast {
        return None;
    }
    let slowest = history.iter().map(|record| record.duration).max()?;
    let evidence = match history.len() {
        1 => format!(
            "the attempt was refused within {}, so nothing listens on the port",
            DisplayDuration(slowest)
        ),
        count => format!(
            "all {count} attempts were refused within {}: the server is not running, or the port is wrong",
            DisplayDuration(slowest)
        ),
    };
    Some(Finding {
        diagnosis: None,
        phase: None,
        evidence: Some(evidence),
    })
}

/// Finds timeouts at the limit while responses from the same place,
/// in this call or recently, took nearly as long: the limit is the problem.
fn timeouts_near_known_latency(
    history: &[AttemptRecord],
    recent_slowest: Option<Duration>,
) -> Option<Finding> {
    let timeouts: Vec<&AttemptRecord> = history
        .iter()
        .filter(|record| matches!(failed(record), Some((_, _, true))))
        .collect();
    if timeouts.is_empty() {
        return None;
    }
    let every_timeout_at_limit = timeouts
        .iter()
        .all(|record| record.duration.as_secs_f64() >= record.limit.as_secs_f64() * AT_LIMIT);
    if !every_timeout_at_limit {
        return None;
    }
    let slowest_in_call = history
        .iter()
        .filter(|record| matches!(record.outcome, AttemptOutcome::Response(_)))
        .map(|record| record.duration)
        .max();
    let slowest = slowest_in_call.max(recent_slowest)?;
    let limit = timeouts.iter().map(|record| record.limit).max()?;
    if slowest.as_secs_f64() < limit.as_secs_f64() * NEAR_LIMIT {
        return None;
    }
    let attempts = match timeouts.len() {
        1 => "the attempt ran".to_owned(),
        count => format!("all {count} timed-out attempts ran"),
    };
    Some(Finding {
        diagnosis: Some(Diagnosis::TimeoutTooShort),
        phase: None,
        evidence: Some(format!(
            "{attempts} until the {} limit, while responses from this host took up to {}",
            DisplayDuration(limit),
            DisplayDuration(slowest)
        )),
    })
}

/// Finds a last attempt that ran until a shorter limit than the others'
/// and timed out, because the total deadline left it less time, after
/// attempts that all failed alike. Their cause is the call's, and the short
/// attempt shows little. The earlier attempts either failed in the same
/// phase without timing out, or timed out in a stage before the response
/// headers, such as the connect. In the second case the last attempt had
/// less time than they took, so its limit fired before the stage's own
/// timeout could, and it looks like a wait for the headers.
fn last_attempt_cut_short(history: &[AttemptRecord]) -> Option<Finding> {
    let (last, earlier) = history.split_last()?;
    let (phase, _, true) = failed(last)? else {
        return None;
    };
    let first = failed(earlier.first()?)?;
    let (first_phase, diagnosis, first_timed_out) = first;
    let alike = earlier.iter().all(|record| failed(record) == Some(first));
    let shortest_earlier = earlier.iter().map(|record| record.limit).min()?;
    let ran_to_limit = last.duration.as_secs_f64() >= last.limit.as_secs_f64() * AT_LIMIT;
    let same_phase = first_phase == phase && !first_timed_out;
    let earlier_stage = phase == Phase::Headers
        && first_timed_out
        && matches!(first_phase, Phase::Dns | Phase::Connect | Phase::Tls)
        && earlier.iter().all(|record| last.limit < record.duration);
    if !alike || !(same_phase || earlier_stage) || !ran_to_limit || last.limit >= shortest_earlier {
        return None;
    }
    let attempts = match earlier.len() {
        1 => "the attempt before it".to_owned(),
        count => format!("all {count} attempts before it"),
    };
    Some(Finding {
        diagnosis: Some(diagnosis),
        phase: earlier_stage.then_some(first_phase),
        evidence: Some(format!(
            "the last attempt had only {} before the total deadline and timed out, while {attempts} failed with {}",
            DisplayDuration(last.limit),
            diagnosis.code()
        )),
    })
}

/// Finds attempts that all failed the same way, which rules out a passing
/// glitch.
fn all_failed_alike(history: &[AttemptRecord]) -> Option<Finding> {
    if history.len() < 2 {
        return None;
    }
    let (phase, diagnosis, _) = failed(&history[0])?;
    let alike = history
        .iter()
        .all(|record| matches!(failed(record), Some((p, d, _)) if p == phase && d == diagnosis));
    if !alike {
        return None;
    }
    let count = history.len();
    let evidence = match diagnosis {
        Diagnosis::ConnectTimedOut => format!(
            "all {count} connects timed out, so packets to this address are being dropped"
        ),
        Diagnosis::ConnectionClosed => format!(
            "the server closed the connection on all {count} attempts, which points at the server rather than the network"
        ),
        Diagnosis::ServerStalled => format!(
            "all {count} attempts ended before the response headers were complete, so the stall is steady rather than a passing slowness"
        ),
        _ => return None,
    };
    Some(Finding {
        diagnosis: None,
        phase: None,
        evidence: Some(evidence),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    const MS: Duration = Duration::from_millis(1);

    fn attempt(outcome: AttemptOutcome, duration: Duration, limit: Duration) -> AttemptRecord {
        AttemptRecord {
            number: 1,
            started_after: Duration::ZERO,
            duration,
            limit,
            fired: None,
            outcome,
            retry_after: None,
            wait_after: None,
            error: None,
        }
    }

    fn failure(phase: Phase, diagnosis: Diagnosis, timed_out: bool) -> AttemptOutcome {
        AttemptOutcome::Failed {
            phase,
            diagnosis,
            timed_out,
        }
    }

    #[test]
    fn cut_short_attempt_takes_earlier_cause() {
        let reset = failure(Phase::Body, Diagnosis::ConnectionClosed, false);
        let stalled = failure(Phase::Body, Diagnosis::BodyStalled, true);
        let history = vec![
            attempt(reset, 40 * MS, 1_000 * MS),
            attempt(reset, 35 * MS, 1_000 * MS),
            attempt(stalled, 64 * MS, 64 * MS),
        ];

        let finding = assess(&history, None);

        assert_eq!(finding.diagnosis, Some(Diagnosis::ConnectionClosed));
        assert_eq!(
            finding.evidence.as_deref(),
            Some("the last attempt had only 64ms before the total deadline and timed out, while all 2 attempts before it failed with connection-closed")
        );
    }

    #[test]
    fn early_end_keeps_its_cause() {
        let refused = failure(Phase::Connect, Diagnosis::ConnectionRefused, false);
        let dropped = failure(Phase::Connect, Diagnosis::ConnectTimedOut, true);
        let history = vec![
            attempt(refused, 2 * MS, 1_000 * MS),
            attempt(refused, 2 * MS, 1_000 * MS),
            attempt(dropped, 150 * MS, 300 * MS),
        ];

        let finding = assess(&history, None);

        assert_eq!(finding.diagnosis, None);
    }

    #[test]
    fn full_limit_keeps_its_cause() {
        let reset = failure(Phase::Body, Diagnosis::ConnectionClosed, false);
        let stalled = failure(Phase::Body, Diagnosis::BodyStalled, true);
        let history = vec![
            attempt(reset, 40 * MS, 1_000 * MS),
            attempt(stalled, 1_000 * MS, 1_000 * MS),
        ];

        let finding = assess(&history, None);

        assert_eq!(finding, Finding::default());
    }

    #[test]
    fn cut_short_wait_after_connect_timeouts_is_connect() {
        let connect = failure(Phase::Connect, Diagnosis::ConnectTimedOut, true);
        let stalled = failure(Phase::Headers, Diagnosis::ServerStalled, true);
        let history = vec![
            attempt(connect, 151 * MS, 250 * MS),
            attempt(stalled, 47 * MS, 46 * MS),
        ];

        let finding = assess(&history, None);

        assert_eq!(finding.diagnosis, Some(Diagnosis::ConnectTimedOut));
        assert_eq!(finding.phase, Some(Phase::Connect));
        assert_eq!(
            finding.evidence.as_deref(),
            Some("the last attempt had only 46ms before the total deadline and timed out, while the attempt before it failed with connect-timeout")
        );
    }

    #[test]
    fn longer_cut_short_wait_keeps_cause() {
        let connect = failure(Phase::Connect, Diagnosis::ConnectTimedOut, true);
        let stalled = failure(Phase::Headers, Diagnosis::ServerStalled, true);
        let history = vec![
            attempt(connect, 151 * MS, 1_000 * MS),
            attempt(stalled, 400 * MS, 400 * MS),
        ];

        let finding = assess(&history, None);

        assert_eq!(finding.diagnosis, None);
        assert_eq!(finding.phase, None);
    }

    #[test]
    fn other_phase_keeps_its_cause() {
        let refused = failure(Phase::Connect, Diagnosis::ConnectionClosed, false);
        let stalled = failure(Phase::Headers, Diagnosis::ServerStalled, true);
        let history = vec![
            attempt(refused, 40 * MS, 1_000 * MS),
            attempt(stalled, 64 * MS, 64 * MS),
        ];

        let finding = assess(&history, None);

        assert_eq!(finding.diagnosis, None);
    }

    #[test]
    fn fast_refusals_point_at_server_not_running() {
        let refused = failure(Phase::Connect, Diagnosis::ConnectionRefused, false);
        let history = vec![
            attempt(refused, MS, 300 * MS),
            attempt(refused, 2 * MS, 300 * MS),
            attempt(refused, MS, 300 * MS),
        ];

        let finding = assess(&history, None);

        assert_eq!(finding.diagnosis, None);
        assert_eq!(
            finding.evidence.as_deref(),
            Some("all 3 attempts were refused within 2ms: the server is not running, or the port is wrong")
        );
    }

    #[test]
    fn slow_refusal_is_no_pattern() {
        let refused = failure(Phase::Connect, Diagnosis::ConnectionRefused, false);
        let history = vec![attempt(refused, 120 * MS, 300 * MS)];

        assert_eq!(assess(&history, None), Finding::default());
    }

    #[test]
    fn timeouts_near_slow_responses_mean_timeout_too_short() {
        let stalled = failure(Phase::Headers, Diagnosis::ServerStalled, true);
        let history = vec![
            attempt(
                AttemptOutcome::Response(StatusCode::SERVICE_UNAVAILABLE),
                290 * MS,
                300 * MS,
            ),
            attempt(stalled, 301 * MS, 300 * MS),
        ];

        let finding = assess(&history, None);

        assert_eq!(finding.diagnosis, Some(Diagnosis::TimeoutTooShort));
        assert_eq!(
            finding.evidence.as_deref(),
            Some("the attempt ran until the 300ms limit, while responses from this host took up to 290ms")
        );
    }

    #[test]
    fn timeouts_near_recent_latency_mean_timeout_too_short() {
        let stalled = failure(Phase::Headers, Diagnosis::ServerStalled, true);
        let history = vec![
            attempt(stalled, 300 * MS, 300 * MS),
            attempt(stalled, 301 * MS, 300 * MS),
        ];

        let finding = assess(&history, Some(270 * MS));

        assert_eq!(finding.diagnosis, Some(Diagnosis::TimeoutTooShort));
        assert!(finding
            .evidence
            .unwrap()
            .starts_with("all 2 timed-out attempts ran until the 300ms limit"));
    }

    #[test]
    fn timeouts_far_above_known_latency_are_stalls() {
        let stalled = failure(Phase::Headers, Diagnosis::ServerStalled, true);
        let history = vec![
            attempt(stalled, 300 * MS, 300 * MS),
            attempt(stalled, 300 * MS, 300 * MS),
        ];

        let finding = assess(&history, Some(20 * MS));

        assert_eq!(finding.diagnosis, None);
        assert_eq!(
            finding.evidence.as_deref(),
            Some("all 2 attempts ended before the response headers were complete, so the stall is steady rather than a passing slowness")
        );
    }

    #[test]
    fn mixed_failures_are_no_pattern() {
        let history = vec![
            attempt(
                failure(Phase::Connect, Diagnosis::ConnectionRefused, false),
                MS,
                300 * MS,
            ),
            attempt(
                failure(Phase::Headers, Diagnosis::ConnectionClosed, false),
                MS,
                300 * MS,
            ),
        ];

        assert_eq!(assess(&history, None), Finding::default());
    }

    #[test]
    fn empty_history_is_no_pattern() {
        assert_eq!(assess(&[], Some(MS)), Finding::default());
    }
}
