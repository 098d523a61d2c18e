//! Table-driven checks of the Gateway, ServiceEntry and Sidecar rules:
//! accepted specs, and rejected ones with the field and Istio's message.

use std::path::Path;

use super::parse_yaml;

/// The (field, message) of every error for one resource of `kind` whose
/// spec is `spec` (indented YAML under `spec:`).
fn problems(kind: &str, spec: &str) -> Vec<(String, String)> {
    let text = format!(
        "apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata: {{name: test}}\nspec:\n{spec}"
    );
    let outcome = parse_yaml(Path::new("test.yaml"), &text);
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    outcome
        .errors
        .into_iter()
        .map(|e| (e.field, e.message))
        .collect()
}

fn check(kind: &str, cases: &[(&str, &[(&str, &str)])]) {
    for (spec, expected) in cases {
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(f, m)| (f.to_string(), m.to_string()))
            .collect();
        assert_eq!(problems(kind, spec), expected, "{kind}:\n{spec}");
    }
}

const HTTP_SERVER: &str =
    "  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ['*']\n";

#[test]
fn gateways() {
    let https = |tls: &str| {
        format!(
            "  servers:\n  - port: {{number: 443, name: https, protocol: HTTPS}}\n    hosts: [a.example.com]\n{tls}"
        )
    };
    let simple_credential = https("    tls: {mode: SIMPLE, credentialName: cert}\n");
    let simple_files = https("    tls: {mode: SIMPLE}\n");
    let mutual = https("    tls: {mode: MUTUAL, serverCertificate: /c, privateKey: /k}\n");
    let istio_mutual = https("    tls: {mode: ISTIO_MUTUAL, credentialName: cert}\n");
    let no_tls = https("");
    let redirect = format!("{HTTP_SERVER}    tls: {{httpsRedirect: true}}\n");
    let two_servers = format!(
        "{HTTP_SERVER}  - port: {{number: 8080, name: http, protocol: HTTP}}\n    hosts: ['*']\n"
    );
    let cases: &[(&str, &[(&str, &str)])] = &[
        (HTTP_SERVER, &[]),
        (&simple_credential, &[]),
        (&redirect, &[]),
        (
            "  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ['prod/*.example.com', './a.com']\n",
            &[],
        ),
        (
            "  selector: {istio: ingressgateway}\n",
            &[("spec.servers", "gateway must have at least one server")],
        ),
        (
            &simple_files,
            &[
                (
                    "spec.servers[0].tls.serverCertificate",
                    "SIMPLE TLS requires a server certificate",
                ),
                (
                    "spec.servers[0].tls.privateKey",
                    "SIMPLE TLS requires a private key",
                ),
            ],
        ),
        (
            &mutual,
            &[(
                "spec.servers[0].tls.caCertificates",
                "MUTUAL TLS requires a client CA bundle",
            )],
        ),
        (
            &istio_mutual,
            &[(
                "spec.servers[0].tls.credentialName",
                "ISTIO_MUTUAL TLS cannot have associated credentialName",
            )],
        ),
        (
            &no_tls,
            &[(
                "spec.servers[0].tls",
                "server must have TLS settings for HTTPS/TLS protocols",
            )],
        ),
        (
            &two_servers,
            &[(
                "spec.servers[1].port.name",
                "port names in servers must be unique: duplicate name http",
            )],
        ),
        (
            "  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n",
            &[(
                "spec.servers[0].hosts",
                "server config must contain at least one host",
            )],
        ),
        (
            "  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ['~/a.com']\n",
            &[(
                "spec.servers[0].hosts[0]",
                "invalid namespace value \"~\" in gateway",
            )],
        ),
        (
            "  servers:\n  - port: {number: 80, name: http, protocol: SMTP}\n    hosts: ['*']\n",
            &[(
                "spec.servers[0].port.protocol",
                "invalid protocol \"SMTP\", supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP",
            )],
        ),
        (
            "  servers:\n  - port: {number: 70000, name: http, protocol: HTTP}\n    hosts: ['*']\n",
            &[(
                "spec.servers[0].port.number",
                "port number 70000 must be in the range 1..65535",
            )],
        ),
        (
            "  servers:\n  - port: {number: 80, protocol: HTTP}\n    hosts: ['*']\n",
            &[("spec.servers[0].port.name", "port name must be set")],
        ),
        (
            "  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    bind: not-an-ip\n    hosts: ['*']\n",
            &[("spec.servers[0].bind", "not-an-ip is not a valid IP")],
        ),
        (
            "  servers:\n  - port: {number: 9000, name: tcp, protocol: TCP}\n    hosts: ['*']\n    tls: {mode: SIMPLE, credentialName: c}\n",
            &[(
                "spec.servers[0].tls",
                "server cannot have TLS settings for non HTTPS/TLS ports",
            )],
        ),
        (
            "  selector: {'bad key!': x}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ['*']\n",
            &[(
                "spec.selector[\"bad key!\"]",
                "invalid tag key: \"bad key!\"",
            )],
        ),
    ];
    check("Gateway", cases);
}

#[test]
fn service_entries() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "  hosts: [www.googleapis.com]\n  ports: [{number: 443, name: https, protocol: HTTPS}]\n  resolution: DNS\n",
            &[],
        ),
        (
            "  hosts: ['*.example.com']\n  addresses: [10.0.0.0/8]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  location: MESH_INTERNAL\n",
            &[],
        ),
        (
            "  hosts: [db.internal]\n  ports: [{number: 5432, name: tcp-db, protocol: TCP}]\n  resolution: STATIC\n  endpoints: [{address: 10.1.1.1, ports: {tcp-db: 15432}, labels: {app: db}}]\n",
            &[],
        ),
        (
            "  hosts: [vm.internal]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  workloadSelector: {labels: {app: vm}}\n  resolution: DNS\n",
            &[],
        ),
        (
            "  ports: [{number: 80, name: http}]\n",
            &[("spec.hosts", "service entry must have at least one host")],
        ),
        ("  hosts: ['*']\n", &[("spec.hosts[0]", "invalid host *")]),
        (
            "  hosts: [a.com]\n  addresses: [10.0.0.0/8]\n  resolution: DNS\n",
            &[(
                "spec.addresses",
                "CIDR addresses are allowed only for NONE/STATIC resolution types",
            )],
        ),
        (
            "  hosts: [a.com]\n  addresses: [10.0.0.0/40]\n",
            &[("spec.addresses[0]", "10.0.0.0/40 is not a valid CIDR block")],
        ),
        (
            "  hosts: [a.com]\n  ports: [{number: 80, name: http}, {number: 80, name: http}]\n",
            &[
                (
                    "spec.ports[1].name",
                    "service entry port name \"http\" already defined",
                ),
                (
                    "spec.ports[1].number",
                    "service entry port 80 already defined",
                ),
            ],
        ),
        (
            "  hosts: [a.com]\n  ports: [{number: 80, name: HTTP_x, protocol: FTP}]\n",
            &[
                ("spec.ports[0].name", "invalid port name: HTTP_x"),
                ("spec.ports[0].protocol", "unsupported protocol: FTP"),
            ],
        ),
        (
            "  hosts: [a.com]\n  endpoints: [{address: 1.2.3.4}]\n  workloadSelector: {labels: {app: a}}\n",
            &[
                (
                    "spec.workloadSelector",
                    "only one of WorkloadSelector or Endpoints is allowed in Service Entry",
                ),
                (
                    "spec.endpoints",
                    "no endpoints should be provided for resolution type none",
                ),
            ],
        ),
        (
            "  hosts: [a.com]\n  resolution: STATIC\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  endpoints: [{address: a.com, ports: {grpc: 9000}}]\n",
            &[
                ("spec.endpoints[0].address", "a.com is not a valid IP"),
                (
                    "spec.endpoints[0].ports.grpc",
                    "endpoint port 9000 is not defined by the service entry",
                ),
            ],
        ),
        (
            "  hosts: ['*.a.com']\n  resolution: DNS\n  ports: [{number: 80, name: http, protocol: HTTP}]\n",
            &[(
                "spec.hosts[0]",
                "hosts must be FQDN if no endpoints are provided for resolution mode DNS",
            )],
        ),
        (
            "  hosts: [a.com, b.com]\n  resolution: DNS\n  ports: [{number: 9000, name: tcp, protocol: TCP}]\n",
            &[(
                "spec.hosts",
                "multiple hosts provided with non-HTTP, non-TLS ports",
            )],
        ),
        (
            "  hosts: [a.com]\n  exportTo: ['*', '.']\n",
            &[(
                "spec.exportTo",
                "cannot have both public (*) and non-public exportTo values for a resource",
            )],
        ),
        (
            "  hosts: [a.com]\n  resolution: MAGIC\n",
            &[(
                "spec.resolution",
                "unknown variant `MAGIC`, expected one of `NONE`, `STATIC`, `DNS`, `DNS_ROUND_ROBIN`",
            )],
        ),
    ];
    check("ServiceEntry", cases);
}

#[test]
fn sidecars() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("  egress:\n  - hosts: ['./*', 'istio-system/*']\n", &[]),
        (
            "  workloadSelector: {labels: {app: ratings}}\n  ingress:\n  - port: {number: 9080, protocol: HTTP, name: http}\n    defaultEndpoint: 127.0.0.1:8080\n  egress:\n  - port: {number: 3306, protocol: MYSQL, name: mysql}\n    hosts: ['*/mysql.foo.com']\n  - hosts: ['~/*']\n",
            &[],
        ),
        (
            "  outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: proxy.example.com, port: {number: 3128}}}\n",
            &[],
        ),
        (
            "  workloadSelector: {labels: {app: a}}\n",
            &[("spec", "sidecar: empty configuration provided")],
        ),
        (
            "  egress:\n  - hosts: []\n",
            &[(
                "spec.egress[0].hosts",
                "sidecar: egress listener must contain at least one host",
            )],
        ),
        (
            "  egress:\n  - hosts: [foo.com]\n",
            &[(
                "spec.egress[0].hosts[0]",
                "host must be of form namespace/dnsName",
            )],
        ),
        (
            "  egress:\n  - hosts: ['*/*']\n  - port: {number: 80, protocol: HTTP}\n    hosts: ['*/*']\n",
            &[(
                "spec.egress[0].port",
                "sidecar: the egress listener with empty port should be the last listener in the list",
            )],
        ),
        (
            "  egress:\n  - port: {number: 80, protocol: HTTP}\n    hosts: ['*/*']\n  - port: {number: 80, protocol: HTTP}\n    hosts: ['./*']\n",
            &[(
                "spec.egress[1].port",
                "sidecar: ports on IP bound listeners must be unique",
            )],
        ),
        (
            "  ingress:\n  - defaultEndpoint: 127.0.0.1:80\n",
            &[(
                "spec.ingress[0].port",
                "sidecar: port is required for ingress listeners",
            )],
        ),
        (
            "  ingress:\n  - port: {number: 9080, protocol: HTTP}\n    defaultEndpoint: 10.0.0.1:8080\n",
            &[(
                "spec.ingress[0].defaultEndpoint",
                "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset",
            )],
        ),
        (
            "  ingress:\n  - port: {number: 9080, protocol: HTTP}\n    tls: {mode: ISTIO_MUTUAL}\n",
            &[(
                "spec.ingress[0].tls.mode",
                "configuration is invalid: cannot set mode to ISTIO_MUTUAL in sidecar ingress tls",
            )],
        ),
        (
            "  egress:\n  - port: {number: 0, protocol: HTTP}\n    hosts: ['*/*']\n",
            &[(
                "spec.egress[0].bind",
                "sidecar: ports with 0 value must have a unix domain socket bind address",
            )],
        ),
        (
            "  outboundTrafficPolicy: {mode: REGISTRY_ONLY, egressProxy: {host: proxy.example.com, port: {number: 3128}}}\n",
            &[(
                "spec.outboundTrafficPolicy.egressProxy",
                "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode",
            )],
        ),
        (
            "  workloadSelector: {labels: {app: '*'}}\n  egress:\n  - hosts: ['*/*']\n",
            &[(
                "spec.workloadSelector.labels.app",
                "wildcard is not supported in selector: \"app=*\"",
            )],
        ),
    ];
    check("Sidecar", cases);
}
