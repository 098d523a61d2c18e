//! The mesh config's external authorizers (`extensionProviders`
//! `envoyExtAuthzHttp` / `envoyExtAuthzGrpc`), which CUSTOM
//! AuthorizationPolicies name, as the translator's [`AuthzProvider`]s.
//! Sending the request body to the authorizer is refused by name.

use trellis_api::MeshConfig;
use trellis_api::mesh_config::MeshExtensionProvider;
use trellis_translate::{AuthzProtocol, AuthzProvider, DEFAULT_AUTHZ_TIMEOUT, HttpAuthz};

use super::tracers::Refusal;

pub fn authz_providers(mesh: &MeshConfig) -> Result<Vec<AuthzProvider>, Refusal> {
    mesh.extension_providers
        .iter()
        .filter_map(|provider| authz_provider(provider).transpose())
        .collect()
}

struct Common<'a> {
    service: &'a str,
    port: u32,
    timeout: Option<&'a str>,
    fail_open: Option<bool>,
    clear_route_cache: Option<bool>,
    status_on_error: Option<&'a str>,
    sends_body: bool,
}

fn authz_provider(provider: &MeshExtensionProvider) -> Result<Option<AuthzProvider>, Refusal> {
    let (common, protocol) = if let Some(http) = &provider.envoy_ext_authz_http {
        let common = Common {
            service: &http.service,
            port: http.port,
            timeout: http.timeout.as_deref(),
            fail_open: http.fail_open,
            clear_route_cache: http.clear_route_cache,
            status_on_error: http.status_on_error.as_deref(),
            sends_body: http.include_request_body_in_check.is_some(),
        };
        let protocol = AuthzProtocol::Http(HttpAuthz {
            path_prefix: http.path_prefix.clone().unwrap_or_default(),
            include_request_headers_in_check: http.include_request_headers_in_check.clone(),
            include_additional_headers_in_check: http
                .include_additional_headers_in_check
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            headers_to_upstream_on_allow: http.headers_to_upstream_on_allow.clone(),
            headers_to_downstream_on_allow: http.headers_to_downstream_on_allow.clone(),
            headers_to_downstream_on_deny: http.headers_to_downstream_on_deny.clone(),
        });
        (common, protocol)
    } else if let Some(grpc) = &provider.envoy_ext_authz_grpc {
        let common = Common {
            service: &grpc.service,
            port: grpc.port,
            timeout: grpc.timeout.as_deref(),
            fail_open: grpc.fail_open,
            clear_route_cache: grpc.clear_route_cache,
            status_on_error: grpc.status_on_error.as_deref(),
            sends_body: grpc.include_request_body_in_check.is_some(),
        };
        (common, AuthzProtocol::Grpc)
    } else {
        return Ok(None);
    };
    let refuse = |message: String| {
        (
            "extensionProviders",
            format!("authorizer {}: {message}", provider.name),
        )
    };
    if common.sends_body {
        return Err(refuse("includeRequestBodyInCheck is not supported".into()));
    }
    let port = u16::try_from(common.port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| refuse(format!("port {} is not a port", common.port)))?;
    let timeout = match common.timeout {
        None => DEFAULT_AUTHZ_TIMEOUT,
        Some(text) => {
            trellis_api::parse_duration(text).map_err(|e| refuse(format!("timeout: {e}")))?
        }
    };
    let status_on_error = match common.status_on_error {
        None | Some("") => None,
        Some(text) => Some(
            text.parse::<u16>()
                .ok()
                .filter(|code| (100..600).contains(code))
                .ok_or_else(|| refuse(format!("statusOnError {text:?} is not an HTTP status")))?,
        ),
    };
    Ok(Some(AuthzProvider {
        name: provider.name.clone(),
        // Istio's `namespace/host` form names the host alone here.
        service: common
            .service
            .rsplit('/')
            .next()
            .unwrap_or(common.service)
            .to_owned(),
        port,
        protocol,
        // Zero would time every check out; Istio's default stands in.
        timeout: if timeout.is_zero() {
            DEFAULT_AUTHZ_TIMEOUT
        } else {
            timeout
        },
        fail_open: common.fail_open.unwrap_or(false),
        status_on_error,
        clear_route_cache: common.clear_route_cache.unwrap_or(false),
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn providers(yaml: &str) -> Result<Vec<AuthzProvider>, Refusal> {
        let config = MeshConfig::parse(Path::new("mesh.yaml"), yaml)
            .unwrap()
            .config;
        authz_providers(&config)
    }

    #[test]
    fn maps_istios_sample_providers() {
        let found = providers(
            "extensionProviders:\n- name: sample-ext-authz-grpc\n  envoyExtAuthzGrpc: {service: ext-authz.foo.svc.cluster.local, port: 9000}\n- name: sample-ext-authz-http\n  envoyExtAuthzHttp:\n    service: foo/ext-authz.foo.svc.cluster.local\n    port: 8000\n    timeout: 2s\n    statusOnError: \"503\"\n    includeRequestHeadersInCheck: [x-ext-authz]\n- name: zipkin\n  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}\n",
        )
        .unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].protocol, AuthzProtocol::Grpc);
        assert_eq!(found[0].timeout, DEFAULT_AUTHZ_TIMEOUT);
        assert_eq!(found[0].status_on_error, None);
        let http = &found[1];
        assert_eq!(http.service, "ext-authz.foo.svc.cluster.local");
        assert_eq!(
            (http.port, http.timeout),
            (8000, std::time::Duration::from_secs(2))
        );
        assert_eq!(http.status_on_error, Some(503));
        let AuthzProtocol::Http(settings) = &http.protocol else {
            panic!("HTTP");
        };
        assert_eq!(settings.include_request_headers_in_check, ["x-ext-authz"]);
    }

    #[test]
    fn refuses_sending_the_body() {
        let refused = providers(
            "extensionProviders:\n- name: a\n  envoyExtAuthzGrpc: {service: a.b.svc.cluster.local, port: 9000, includeRequestBodyInCheck: {maxRequestBytes: 10}}\n",
        )
        .unwrap_err();
        assert!(
            refused.1.contains("includeRequestBodyInCheck"),
            "{refused:?}"
        );
    }
}
