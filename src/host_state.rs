//! The state a middleware keeps for each host and port it calls.

use crate::budget::HostBudget;
use crate::latency::RecentLatency;

/// The retry budget and the recent response times of one host and port,
/// shared by all clones of a middleware. A call looks it up once, when it
/// starts.
#[derive(Debug, Default)]
pub(crate) struct HostState {
    pub(crate) budget: HostBudget,
    pub(crate) latency: RecentLatency,
}
