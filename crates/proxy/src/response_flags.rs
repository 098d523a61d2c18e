//! Envoy's response flags: why the proxy answered as it did, as the
//! `response_flags` metric label shows them (`DI,UT`: delayed, then timed
//! out). Several can hold at once; they print comma-separated in a fixed
//! (alphabetical) order, as Envoy prints them.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// DC: the client went away before the request was read.
    DownstreamDisconnected,
    /// DI: the fault filter delayed the request.
    DelayInjected,
    /// DPE: the request is unusable (no authority).
    BadRequest,
    /// FI: the fault filter aborted the request.
    FaultInjected,
    /// NC: the route names a cluster the proxy does not have.
    NoCluster,
    /// NR: no route matched.
    NoRoute,
    /// RBAC: an RBAC filter (AuthorizationPolicy) denied the request.
    RbacDenied,
    /// UAEX: the external authorization service denied the request.
    ExtAuthzDenied,
    /// UF: connecting to the upstream failed.
    UpstreamUnreachable,
    /// UH: the cluster has no endpoints.
    NoHealthyUpstream,
    /// UO: the cluster's retry budget refused a retry.
    UpstreamOverflow,
    /// UR: the upstream reset the stream before answering.
    UpstreamReset,
    /// URX: the last attempt was retriable but the retries were used up.
    RetryLimitExceeded,
    /// UT: the route's (or the last attempt's) timeout elapsed.
    UpstreamTimeout,
}

/// Alphabetical by code, the order Envoy prints.
const ORDER: [(Flag, &str); 14] = [
    (Flag::DownstreamDisconnected, "DC"),
    (Flag::DelayInjected, "DI"),
    (Flag::BadRequest, "DPE"),
    (Flag::FaultInjected, "FI"),
    (Flag::NoCluster, "NC"),
    (Flag::NoRoute, "NR"),
    (Flag::RbacDenied, "RBAC"),
    (Flag::ExtAuthzDenied, "UAEX"),
    (Flag::UpstreamUnreachable, "UF"),
    (Flag::NoHealthyUpstream, "UH"),
    (Flag::UpstreamOverflow, "UO"),
    (Flag::UpstreamReset, "UR"),
    (Flag::RetryLimitExceeded, "URX"),
    (Flag::UpstreamTimeout, "UT"),
];

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponseFlags(u16);

impl ResponseFlags {
    pub fn set(&mut self, flag: Flag) {
        self.0 |= bit(flag);
    }

    pub fn contains(self, flag: Flag) -> bool {
        self.0 & bit(flag) != 0
    }

    /// The label value: `-` for none. Combinations are built once and kept
    /// (at most 2^13 of them exist; in practice a handful), so labels stay
    /// `&'static str` and counting a request does not allocate.
    pub fn as_str(self) -> &'static str {
        if self.0 == 0 {
            return "-";
        }
        if let Some((_, code)) = ORDER.iter().find(|(flag, _)| bit(*flag) == self.0) {
            return code;
        }
        static JOINED: OnceLock<Mutex<HashMap<u16, &'static str>>> = OnceLock::new();
        let mut joined = JOINED
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        joined.entry(self.0).or_insert_with(|| {
            let codes: Vec<&str> = ORDER
                .iter()
                .filter(|(flag, _)| self.contains(*flag))
                .map(|(_, code)| *code)
                .collect();
            Box::leak(codes.join(",").into_boxed_str())
        })
    }
}

fn bit(flag: Flag) -> u16 {
    let index = ORDER
        .iter()
        .position(|(f, _)| *f == flag)
        .expect("every flag is in ORDER");
    1 << index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_envoy() {
        let mut flags = ResponseFlags::default();
        assert_eq!(flags.as_str(), "-");
        flags.set(Flag::UpstreamTimeout);
        assert_eq!(flags.as_str(), "UT");
        flags.set(Flag::DelayInjected);
        assert_eq!(flags.as_str(), "DI,UT");
        flags.set(Flag::RetryLimitExceeded);
        assert_eq!(flags.as_str(), "DI,URX,UT");
        assert!(std::ptr::eq(flags.as_str(), flags.as_str()), "built once");
    }
}
