//! Kubernetes kinds the mesh reads: real manifests, with the many fields the
//! mesh does not use, load without errors or warnings; what the API server
//! would refuse is an error naming the field.

use std::path::Path;

use super::parse_yaml;
use crate::AnyResource;

const MANIFESTS: &str = r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: data, uid: 1}
spec:
  serviceName: db
  replicas: 3
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      serviceAccountName: db
      containers:
      - name: db
        image: postgres:16
        ports: [{containerPort: 5432, name: tcp-pg}]
        volumeMounts: [{name: data, mountPath: /var/lib/postgresql}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce]}
status: {replicas: 3}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  updateStrategy: {type: RollingUpdate}
  template:
    metadata: {labels: {app: agent}}
    spec:
      hostNetwork: true
      tolerations: [{operator: Exists}]
      containers: [{name: agent, image: agent:1}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web-5d4f, ownerReferences: [{kind: Deployment, name: web}]}
spec:
  replicas: 2
  selector: {matchLabels: {app: web, pod-template-hash: 5d4f}}
  template:
    metadata: {labels: {app: web, pod-template-hash: 5d4f}}
    spec: {containers: [{name: web, image: web:1}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  backoffLimit: 4
  template:
    metadata: {labels: {app: migrate}}
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: migrate:1, command: [./migrate]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: reviews-abc
  labels: {kubernetes.io/service-name: reviews}
addressType: IPv4
endpoints:
- addresses: [10.1.0.7]
  conditions: {ready: true, serving: true, terminating: false}
  nodeName: node-1
  zone: us-east-1a
  targetRef: {kind: Pod, name: reviews-v1-abc, namespace: default, uid: x}
ports:
- {name: http, port: 9080, protocol: TCP, appProtocol: http}
---
apiVersion: v1
kind: Secret
metadata: {name: cacerts, namespace: istio-system}
type: Opaque
data:
  ca-cert.pem: LS0tLS1CRUdJTg==
  ca-key.pem: LS0t
stringData: {root-cert.pem: plain}
immutable: true
---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    trustDomain: cluster.local
  meshNetworks: 'networks: {}'
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: istio-sidecar-injector}
webhooks:
- name: namespace.sidecar-injector.istio.io
  clientConfig:
    service: {name: istiod, namespace: istio-system, path: /inject, port: 443}
    caBundle: LS0t
  namespaceSelector:
    matchExpressions: [{key: istio-injection, operator: In, values: [enabled]}]
  rules:
  - operations: [CREATE]
    apiGroups: [""]
    apiVersions: [v1]
    resources: [pods]
  failurePolicy: Fail
  sideEffects: None
  admissionReviewVersions: [v1beta1, v1]
  reinvocationPolicy: Never
"#;

#[test]
fn real_kubernetes_manifests_load_without_errors_or_warnings() {
    let outcome = parse_yaml(Path::new("k8s.yaml"), MANIFESTS);
    assert!(outcome.errors.is_empty(), "{:#?}", outcome.errors);
    assert!(outcome.warnings.is_empty(), "{:#?}", outcome.warnings);
    let keys: Vec<String> = outcome
        .resources
        .iter()
        .map(|r| r.key().to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "StatefulSet/data/db",
            "DaemonSet/default/agent",
            "ReplicaSet/default/web-5d4f",
            "Job/default/migrate",
            "EndpointSlice/default/reviews-abc",
            "Secret/istio-system/cacerts",
            "ConfigMap/istio-system/istio",
            "MutatingWebhookConfiguration/istio-sidecar-injector",
        ]
    );
    let [
        AnyResource::StatefulSet(db),
        ..,
        AnyResource::MutatingWebhookConfiguration(webhook),
    ] = outcome.resources.as_slice()
    else {
        panic!("unexpected kinds");
    };
    assert_eq!(db.spec.service_name, "db");
    assert_eq!(db.spec.template.metadata.labels["app"], "db");
    let service = webhook.spec.webhooks[0].client_config.service.as_ref();
    assert_eq!(service.map(|s| s.path.as_deref()), Some(Some("/inject")));
    let AnyResource::ConfigMap(config) = &outcome.resources[6] else {
        panic!("not a config map");
    };
    assert_eq!(config.spec.data["mesh"], "trustDomain: cluster.local\n");
    let AnyResource::EndpointSlice(slice) = &outcome.resources[4] else {
        panic!("not an endpoint slice");
    };
    assert_eq!(slice.spec.endpoints[0].conditions.ready, Some(true));
    assert_eq!(slice.spec.ports[0].port, Some(9080));
}

/// A text and the (field, line, message) of each error expected.
type Case<'a> = (&'a str, &'a [(&'a str, usize, &'a str)]);

/// (field, line, message) of every error of a one-document text.
fn errors(text: &str) -> Vec<(String, usize, String)> {
    let outcome = parse_yaml(Path::new("k8s.yaml"), text);
    outcome
        .errors
        .into_iter()
        .map(|e| (e.field, e.line, e.message))
        .collect()
}

#[test]
fn what_the_api_server_refuses_is_an_error_at_its_field() {
    let cases: [Case<'_>; 6] = [
        (
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  key: not base64!\n",
            &[("data.key", 5, "illegal base64 data")],
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  'a/b': x\n",
            &[(
                "data[\"a/b\"]",
                5,
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.': \"a/b\"",
            )],
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: a}\nbinaryData: {k: YQ==}\n",
            &[("binaryData.k", 5, "duplicate of key \"k\" present in data")],
        ),
        (
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e}\naddressType: IPv5\nendpoints: [{addresses: []}]\nports: [{port: 0}]\n",
            &[
                (
                    "addressType",
                    4,
                    "addressType \"IPv5\" must be one of IPv4, IPv6 or FQDN",
                ),
                (
                    "endpoints[0].addresses",
                    5,
                    "must have at least one address",
                ),
                (
                    "ports[0].port",
                    6,
                    "port number 0 must be in the range 1..65535",
                ),
            ],
        ),
        (
            "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata: {name: w}\nwebhooks:\n- name: a\n  clientConfig: {url: 'https://x', service: {name: s, namespace: n}}\n",
            &[(
                "webhooks[0].clientConfig",
                6,
                "exactly one of url or service is required",
            )],
        ),
        (
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s}\nspec:\n  template:\n    spec:\n      containers: [{name: a, ports: [{containerPort: 0}]}]\n",
            &[(
                "spec.template.spec.containers[0].ports[0].containerPort",
                7,
                "must be between 1 and 65535, inclusive",
            )],
        ),
    ];
    for (text, expected) in cases {
        let expected: Vec<(String, usize, String)> = expected
            .iter()
            .map(|(f, l, m)| (f.to_string(), *l, m.to_string()))
            .collect();
        assert_eq!(errors(text), expected, "{text}");
    }
}

#[test]
fn a_wrongly_typed_top_level_field_is_an_error_not_a_panic() {
    let found = errors("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: [a]\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].0.as_str(), found[0].1), ("data", 4));
}
