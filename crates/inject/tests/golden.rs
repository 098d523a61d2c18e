//! Golden tests: `testdata/NAME.input.yaml` injected with each case's
//! config must equal `testdata/NAME.golden.yaml`. Set `UPDATE_GOLDEN=1` to
//! rewrite the golden files after a deliberate change, then review the diff.

use std::path::PathBuf;

use trellis_inject::{InjectConfig, Revision, inject_manifest};

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn default_config() -> InjectConfig {
    let mut config = InjectConfig::for_revision(Revision::default());
    config.proxy_image = "trellis:test".to_owned();
    config
}

fn check(name: &str, config: &InjectConfig) -> String {
    let input = std::fs::read_to_string(testdata(&format!("{name}.input.yaml"))).unwrap();
    let injected = inject_manifest(&input, config).unwrap();
    let golden_path = testdata(&format!("{name}.golden.yaml"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden_path, &injected).unwrap();
    }
    let golden = std::fs::read_to_string(&golden_path).unwrap();
    assert_eq!(
        injected,
        golden,
        "{} differs from kube-inject's output; rerun with UPDATE_GOLDEN=1 and review the diff",
        golden_path.display()
    );
    injected
}

#[test]
fn deployment() {
    check("deployment", &default_config());
}

#[test]
fn pod() {
    check("pod", &default_config());
}

#[test]
fn opted_out_workloads_pass_through() {
    let output = check("opt-out", &default_config());
    assert!(!output.contains("istio-proxy"), "{output}");
}

#[test]
fn revision() {
    let mut config = InjectConfig::for_revision(Revision::new("canary"));
    config.proxy_image = "trellis:test".to_owned();
    check("revision", &config);
}

/// Injecting an injected manifest changes nothing: the status annotation
/// marks every pod as done.
#[test]
fn already_injected() {
    let injected = std::fs::read_to_string(testdata("deployment.golden.yaml")).unwrap();
    assert_eq!(
        inject_manifest(&injected, &default_config()).unwrap(),
        injected
    );
}
