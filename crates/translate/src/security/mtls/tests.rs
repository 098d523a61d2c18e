//! PeerAuthentication precedence and inheritance, table-driven.

use super::super::test_support::{resource, sidecar, snapshot};
use super::{InboundMtls, inbound_mtls};

fn peer(namespace: &str, name: &str, spec: &str) -> String {
    resource("PeerAuthentication", namespace, name, spec)
}

#[test]
fn precedence_and_inheritance() {
    use InboundMtls::{Disable, Permissive, Strict};
    let mesh_strict = peer("istio-system", "default", "{mtls: {mode: STRICT}}");
    let ns_disable = peer("default", "default", "{mtls: {mode: DISABLE}}");
    let ns_unset = peer("default", "default", "{}");
    let reviews_permissive = peer(
        "default",
        "reviews",
        "{selector: {matchLabels: {app: reviews}}, mtls: {mode: PERMISSIVE}}",
    );
    let reviews_port_strict = peer(
        "default",
        "reviews",
        "{selector: {matchLabels: {app: reviews}}, portLevelMtls: {9090: {mode: STRICT}}}",
    );
    let other_ns_strict = peer("prod", "default", "{mtls: {mode: STRICT}}");
    let root_selector = peer(
        "istio-system",
        "selected",
        "{selector: {matchLabels: {app: reviews}}, mtls: {mode: DISABLE}}",
    );
    // (policies, app, (mode on 9080, mode on 9090))
    let cases: Vec<(Vec<&str>, &str, (InboundMtls, InboundMtls))> = vec![
        (vec![], "reviews", (Permissive, Permissive)),
        (vec![&mesh_strict], "reviews", (Strict, Strict)),
        (
            vec![&mesh_strict, &ns_disable],
            "reviews",
            (Disable, Disable),
        ),
        (vec![&mesh_strict, &ns_unset], "reviews", (Strict, Strict)),
        (
            vec![&mesh_strict, &reviews_permissive],
            "reviews",
            (Permissive, Permissive),
        ),
        (
            vec![&mesh_strict, &reviews_permissive],
            "ratings",
            (Strict, Strict),
        ),
        (
            vec![&ns_disable, &reviews_port_strict],
            "reviews",
            (Disable, Strict),
        ),
        (vec![&other_ns_strict], "reviews", (Permissive, Permissive)),
        // A selector in the root namespace only selects root-namespace workloads.
        (
            vec![&mesh_strict, &root_selector],
            "reviews",
            (Strict, Strict),
        ),
    ];
    for (policies, app, (on_9080, on_9090)) in cases {
        let snapshot = snapshot(&policies.concat());
        let node = sidecar("default", app);
        assert_eq!(
            (
                inbound_mtls(&snapshot, &node, 9080),
                inbound_mtls(&snapshot, &node, 9090)
            ),
            (on_9080, on_9090),
            "{app} under:\n{}",
            policies.concat()
        );
    }
}

#[test]
fn first_policy_by_name_wins_at_one_level() {
    let snapshot = snapshot(
        &[
            peer("default", "b-permissive", "{mtls: {mode: PERMISSIVE}}"),
            peer("default", "a-strict", "{mtls: {mode: STRICT}}"),
        ]
        .concat(),
    );
    assert_eq!(
        inbound_mtls(&snapshot, &sidecar("default", "reviews"), 9080),
        InboundMtls::Strict
    );
}
