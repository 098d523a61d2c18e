//! Which calls a demo app makes for each request: Bookinfo's call graph for
//! Bookinfo's service names, nothing for any other name (a generic echo).

use std::time::Duration;

/// One upstream call made while serving a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedCall {
    /// The callee's service name as the app addresses it (short name,
    /// resolved in the caller's namespace, as Bookinfo does).
    pub service: &'static str,
    pub port: u16,
    pub path: &'static str,
    /// Per attempt, covering the whole response.
    pub timeout: Duration,
    /// Total attempts; an attempt fails unless it answers 200.
    pub attempts: u32,
}

impl PlannedCall {
    pub fn url(&self) -> String {
        format!("http://{}:{}{}", self.service, self.port, self.path)
    }
}

const BOOKINFO_PORT: u16 = 9080;

/// The calls `service` at `version` makes, in the order they appear in its
/// response. Timeouts and retries are Bookinfo's own app-level ones:
/// productpage gives details 3 s, and reviews 3 s with one retry; reviews
/// v2 and v3 give ratings 10 s; reviews v1 shows no stars, so it makes no
/// call.
pub(crate) fn planned_calls(service: &str, version: &str) -> Vec<PlannedCall> {
    match (service, version) {
        ("productpage", _) => vec![
            bookinfo_call("details", "/details/0", Duration::from_secs(3), 1),
            bookinfo_call("reviews", "/reviews/0", Duration::from_secs(3), 2),
        ],
        ("reviews", "v1") => Vec::new(),
        ("reviews", _) => vec![bookinfo_call(
            "ratings",
            "/ratings/0",
            Duration::from_secs(10),
            1,
        )],
        _ => Vec::new(),
    }
}

fn bookinfo_call(
    service: &'static str,
    path: &'static str,
    timeout: Duration,
    attempts: u32,
) -> PlannedCall {
    PlannedCall {
        service,
        port: BOOKINFO_PORT,
        path,
        timeout,
        attempts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callees(service: &str, version: &str) -> Vec<&'static str> {
        planned_calls(service, version)
            .iter()
            .map(|call| call.service)
            .collect()
    }

    #[test]
    fn follows_bookinfo_call_graph() {
        assert_eq!(callees("productpage", "v1"), ["details", "reviews"]);
        assert!(callees("reviews", "v1").is_empty());
        assert_eq!(callees("reviews", "v2"), ["ratings"]);
        assert_eq!(callees("reviews", "v3"), ["ratings"]);
        assert!(callees("ratings", "v1").is_empty());
        assert!(callees("details", "v1").is_empty());
        assert!(callees("httpbin", "v1").is_empty());
    }

    #[test]
    fn uses_bookinfo_timeouts_and_retries() {
        let productpage = planned_calls("productpage", "v1");
        assert_eq!(productpage[1].url(), "http://reviews:9080/reviews/0");
        assert_eq!(productpage[1].timeout, Duration::from_secs(3));
        assert_eq!(productpage[1].attempts, 2);
        assert_eq!(productpage[0].attempts, 1);
        let reviews = planned_calls("reviews", "v3");
        assert_eq!(reviews[0].timeout, Duration::from_secs(10));
    }
}
