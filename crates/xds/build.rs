//! Compiles a descriptor set of the Envoy API from the `.proto` files that the
//! `envoy-types` crate ships, so that xDS resources can be printed as
//! proto3 JSON (config dumps, golden tests) without a system `protoc`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Top-level files; protox pulls in their imports.
const ROOT_FILES: &[&str] = &[
    "envoy/admin/v3/config_dump.proto",
    "envoy/config/listener/v3/listener.proto",
    "envoy/config/cluster/v3/cluster.proto",
    "envoy/config/route/v3/route.proto",
    "envoy/config/endpoint/v3/endpoint.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto",
    "envoy/extensions/filters/http/router/v3/router.proto",
    "envoy/config/trace/v3/zipkin.proto",
    "envoy/config/trace/v3/opentelemetry.proto",
    "envoy/extensions/access_loggers/file/v3/file.proto",
    "envoy/extensions/filters/http/fault/v3/fault.proto",
    "envoy/extensions/filters/http/cors/v3/cors.proto",
    "envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto",
    "envoy/extensions/filters/http/rbac/v3/rbac.proto",
    "envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto",
    "envoy/extensions/filters/network/rbac/v3/rbac.proto",
    "envoy/extensions/filters/http/jwt_authn/v3/config.proto",
    "envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto",
    "envoy/extensions/filters/listener/original_dst/v3/original_dst.proto",
    "envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto",
    "envoy/extensions/transport_sockets/tls/v3/tls.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    "envoy/service/discovery/v3/discovery.proto",
    "envoy/extensions/access_loggers/filters/cel/v3/cel.proto",
    "stats/plugin_config.proto",
];

const INCLUDE_DIRS: &[&str] = &[
    "data-plane-api",
    "xds",
    "protoc-gen-validate",
    "googleapis",
    "cel-spec/proto",
    "opentelemetry-proto",
    "client_model",
];

fn main() {
    let proto_root = envoy_types_proto_dir();
    let mut includes: Vec<PathBuf> = INCLUDE_DIRS.iter().map(|d| proto_root.join(d)).collect();
    // Trellis' own copies of non-Envoy protos its proxies take (Istio's).
    let own =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("proto");
    println!("cargo:rerun-if-changed={}", own.display());
    includes.push(own);
    let descriptors = protox::compile(ROOT_FILES, &includes)
        .unwrap_or_else(|e| panic!("compiling Envoy protos under {}: {e}", proto_root.display()));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    std::fs::write(
        out.join("envoy_descriptors.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )
    .expect("writing descriptor set");
    println!("cargo:rerun-if-changed=build.rs");
}

/// Where cargo unpacked `envoy-types`. The registry checkout named by the
/// lockfile is found without running cargo; `cargo metadata` is the fallback
/// for vendored and git sources. Metadata is not the first choice: it wants
/// every locked package's manifest, including other platforms' crates that a
/// Linux build never downloads, so it fails offline on a fresh machine.
fn envoy_types_proto_dir() -> PathBuf {
    registry_checkout()
        .unwrap_or_else(metadata_checkout)
        .join("proto")
}

fn registry_checkout() -> Option<PathBuf> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").ok()?);
    let lockfile = manifest_dir
        .ancestors()
        .map(|d| d.join("Cargo.lock"))
        .find(|p| p.is_file())?;
    println!("cargo:rerun-if-changed={}", lockfile.display());
    let version = locked_version(&std::fs::read_to_string(lockfile).ok()?, "envoy-types")?;
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
    let wanted = format!("envoy-types-{version}");
    std::fs::read_dir(cargo_home.join("registry").join("src"))
        .ok()?
        .flatten()
        .map(|index| index.path().join(&wanted))
        .find(|dir| dir.join("proto").is_dir())
}

/// The version of `name` in a Cargo.lock (`[[package]]` tables).
fn locked_version(lockfile: &str, name: &str) -> Option<String> {
    let mut lines = lockfile.lines();
    let name_line = format!("name = \"{name}\"");
    lines.find(|line| line.trim() == name_line)?;
    let version = lines.next()?.trim().strip_prefix("version = \"")?;
    Some(version.trim_end_matches('"').to_string())
}

fn metadata_checkout() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("Cargo.toml");
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .expect("running cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("packages array");
    let manifest_path = packages
        .iter()
        .find(|p| p["name"] == "envoy-types")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("envoy-types is a dependency");
    Path::new(manifest_path)
        .parent()
        .expect("manifest has a parent directory")
        .to_path_buf()
}
