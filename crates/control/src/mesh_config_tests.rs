use std::path::Path;

use clap::Parser;

use super::*;

#[derive(Parser)]
struct Command {
    #[command(flatten)]
    options: ControlPlaneOptions,
}

fn options(flags: &[&str]) -> ControlPlaneOptions {
    let argv = ["control-plane", "--config-dir", "/config"]
        .iter()
        .chain(flags);
    Command::try_parse_from(argv).unwrap().options
}

fn mesh(text: &str) -> LoadedMeshConfig {
    let outcome = MeshConfig::parse(Path::new("mesh.yaml"), text).unwrap();
    LoadedMeshConfig {
        source: "mesh.yaml".into(),
        config: outcome.config,
    }
}

fn refused_field(text: &str) -> &'static str {
    match resolve(&options(&[]), Some(&mesh(text))) {
        Err(MeshSettingsError::Unsupported { field, .. }) => field,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn without_a_mesh_config_istio_defaults_apply() {
    let settings = resolve(&options(&[]), None).unwrap();
    assert_eq!(settings.trust_domain, "cluster.local");
    assert_eq!(settings.mesh, MeshOptions::default());
}

#[test]
fn the_mesh_config_sets_what_no_flag_does() {
    let loaded = mesh(
        "trustDomain: example.org\naccessLogFile: /dev/stdout\naccessLogEncoding: TEXT\n\
         accessLogFormat: \"%REQ(:PATH)%\\n\"\noutboundTrafficPolicy: {mode: REGISTRY_ONLY}\n\
         rootNamespace: istio-system\nenableAutoMtls: true\n",
    );
    let settings = resolve(&options(&[]), Some(&loaded)).unwrap();
    assert_eq!(settings.trust_domain, "example.org");
    assert_eq!(
        settings.mesh.access_log_file.as_deref(),
        Some("/dev/stdout")
    );
    assert_eq!(
        settings.mesh.access_log_format.as_deref(),
        Some("%REQ(:PATH)%\n")
    );
    assert_eq!(
        settings.mesh.outbound_traffic_policy,
        OutboundTrafficPolicy::RegistryOnly
    );
}

#[test]
fn explicit_flags_win_over_the_mesh_config() {
    let loaded = mesh(
        "trustDomain: example.org\naccessLogFile: /dev/stdout\naccessLogFormat: mesh\n\
         outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n",
    );
    let flags = options(&[
        "--trust-domain",
        "flag.example",
        "--access-log-file",
        "",
        "--access-log-format",
        "flag",
        "--outbound-traffic-policy",
        "allow_any",
    ]);
    let settings = resolve(&flags, Some(&loaded)).unwrap();
    assert_eq!(settings.trust_domain, "flag.example");
    // An explicit empty path turns the mesh config's access log off.
    assert_eq!(settings.mesh.access_log_file, None);
    assert_eq!(settings.mesh.access_log_format.as_deref(), Some("flag"));
    assert_eq!(
        settings.mesh.outbound_traffic_policy,
        OutboundTrafficPolicy::AllowAny
    );
}

#[test]
fn an_omitted_mode_is_allow_any_as_in_istio() {
    let settings = resolve(&options(&[]), Some(&mesh("accessLogFile: \"\"\n"))).unwrap();
    assert_eq!(settings.mesh, MeshOptions::default());
}

#[test]
fn settings_trellis_cannot_honour_are_refused_by_name() {
    assert_eq!(refused_field("rootNamespace: mesh-root\n"), "rootNamespace");
    assert_eq!(refused_field("enableAutoMtls: false\n"), "enableAutoMtls");
    let egress =
        "outboundTrafficPolicy:\n  mode: ALLOW_ANY\n  egressProxy: {host: egress.example}\n";
    assert_eq!(refused_field(egress), "outboundTrafficPolicy.egressProxy");
}

#[test]
fn a_refusal_names_the_source_and_field() {
    let error = resolve(&options(&[]), Some(&mesh("rootNamespace: mesh-root\n"))).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("mesh.yaml"), "{message}");
    assert!(message.contains("rootNamespace"), "{message}");
}

#[test]
fn json_encoding_comes_from_the_mesh_config_or_the_flag() {
    let loaded = mesh("accessLogFile: /dev/stdout\naccessLogEncoding: JSON\n");
    let settings = resolve(&options(&[]), Some(&loaded)).unwrap();
    assert_eq!(settings.mesh.access_log_encoding, Encoding::Json);
    let text = resolve(&options(&["--access-log-encoding", "text"]), Some(&loaded)).unwrap();
    assert_eq!(text.mesh.access_log_encoding, Encoding::Text);
    let flag = resolve(&options(&["--access-log-encoding", "JSON"]), None).unwrap();
    assert_eq!(flag.mesh.access_log_encoding, Encoding::Json);
    assert!(Command::try_parse_from(["control-plane", "--access-log-encoding", "xml"]).is_err());
}

#[test]
fn a_json_format_must_be_an_object_of_fields() {
    let custom = "accessLogEncoding: JSON\naccessLogFormat: '{\"code\": \"%RESPONSE_CODE%\"}'\n";
    let settings = resolve(&options(&[]), Some(&mesh(custom))).unwrap();
    assert_eq!(
        settings.mesh.access_log_format.as_deref(),
        Some("{\"code\": \"%RESPONSE_CODE%\"}")
    );

    let text_format = "accessLogEncoding: JSON\naccessLogFormat: '%RESPONSE_CODE%'\n";
    let error = resolve(&options(&[]), Some(&mesh(text_format))).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("mesh.yaml accessLogFormat"), "{message}");

    let flags = options(&[
        "--access-log-encoding",
        "json",
        "--access-log-format",
        "[1]",
    ]);
    let message = resolve(&flags, None).unwrap_err().to_string();
    assert!(message.contains("--access-log-format"), "{message}");
}

#[test]
fn an_invalid_file_is_an_error_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mesh.yaml");
    std::fs::write(
        &path,
        "accessLogFile: /dev/stdout\noutboundTrafficPolicy:\n  mode: SOMETIMES\n",
    )
    .unwrap();
    let message = LoadedMeshConfig::from_file(&path).unwrap_err().to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains(":3:"), "{message}");
    assert!(message.contains("outboundTrafficPolicy.mode"), "{message}");
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let error = LoadedMeshConfig::from_file(Path::new("/nonexistent/mesh.yaml")).unwrap_err();
    assert!(
        error.to_string().contains("/nonexistent/mesh.yaml"),
        "{error}"
    );
}
