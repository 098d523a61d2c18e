//! `trellis analyze` and `trellis validate` end to end: the real binary on
//! the bundled Bookinfo sample and on files written by the test.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn trellis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(args)
        .output()
        .expect("running trellis")
}

fn bookinfo(relative: &str) -> String {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../samples/bookinfo")
        .join(relative);
    path.to_string_lossy().into_owned()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const REVIEWS_V4: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v4
";

#[test]
fn bookinfo_with_all_destination_rules_and_v1_routes_has_no_error() {
    let platform = bookinfo("platform/bookinfo.yaml");
    let rules = bookinfo("networking/destination-rule-all.yaml");
    let routes = bookinfo("networking/virtual-service-all-v1.yaml");
    let output = trellis(&["analyze", "-f", &platform, "-f", &rules, "-f", &routes]);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(!stdout.contains("Error ["), "{stdout}");
}

#[test]
fn a_subset_no_destination_rule_defines_is_ist0101() {
    let directory = tempfile::tempdir().unwrap();
    let reviews = directory.path().join("reviews-v4.yaml");
    std::fs::write(&reviews, REVIEWS_V4).unwrap();
    let platform = bookinfo("platform/bookinfo.yaml");
    let rules = bookinfo("networking/destination-rule-all.yaml");
    let output = trellis(&[
        "analyze",
        "-f",
        &platform,
        "-f",
        &rules,
        "-f",
        reviews.to_str().unwrap(),
    ]);
    let stdout = text(&output.stdout);
    assert!(
        stdout.lines().any(|line| line
            == "Error [IST0101] (VirtualService default/reviews) Referenced host+subset in destinationrule not found: \"reviews+v4\""),
        "{stdout}"
    );
    assert_eq!(output.status.code(), Some(79), "{stdout}");

    // The same finding, suppressed, no longer fails the run.
    let suppressed = trellis(&[
        "analyze",
        "-f",
        &platform,
        "-f",
        &rules,
        "-f",
        reviews.to_str().unwrap(),
        "--suppress",
        "IST0101=VirtualService default/reviews",
    ]);
    assert_eq!(
        suppressed.status.code(),
        Some(0),
        "{}",
        text(&suppressed.stdout)
    );

    // JSON carries the code, the origin and where the resource is written.
    let json = trellis(&[
        "analyze",
        "-o",
        "json",
        "-f",
        &platform,
        "-f",
        &rules,
        "-f",
        reviews.to_str().unwrap(),
    ]);
    let messages: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let ist0101 = messages
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["code"] == "IST0101")
        .unwrap();
    assert_eq!(ist0101["origin"], "VirtualService default/reviews");
    assert_eq!(ist0101["reference"], format!("{}:1", reviews.display()));
    assert_eq!(json.status.code(), Some(79));
}

#[test]
fn analyze_reads_standard_input_and_thresholds_apply() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["analyze", "-", "--failure-threshold", "Warning"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rule = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec: {host: reveiws}\n";
    child
        .stdin
        .take()
        .unwrap()
        .write_all(rule.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        text(&output.stdout).trim_end(),
        "Warning [IST0174] (DestinationRule default/reviews) The host reveiws defined in the DestinationRule does not match any services in the mesh."
    );
    assert_eq!(output.status.code(), Some(79));
}

#[test]
fn validate_reports_a_negative_weight_at_its_line_and_column() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("weights.yaml");
    let yaml = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 110
    - destination: {host: reviews, subset: v2}
      weight: -10
";
    std::fs::write(&file, yaml).unwrap();
    let output = trellis(&["validate", "-f", file.to_str().unwrap()]);
    let stderr = text(&output.stderr);
    let expected = format!(
        "error: {}:12:7: spec.http[0].route[1].weight: percentage -10 is not in range 0..100",
        file.display()
    );
    assert!(stderr.lines().any(|line| line == expected), "{stderr}");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
}

#[test]
fn every_bookinfo_sample_validates_without_errors_or_warnings() {
    let networking = bookinfo("networking");
    let platform = bookinfo("platform");
    let output = trellis(&["validate", "-f", &networking, "-f", &platform]);
    let stderr = text(&output.stderr);
    assert_eq!(stderr, "", "errors or warnings");
    assert_eq!(output.status.code(), Some(0));
    assert!(text(&output.stdout).contains("is valid"));
}

#[test]
fn validate_warns_about_unknown_fields_and_envoy_filters_without_failing() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("typo.yaml");
    let yaml = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
    timout: 5s
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: lua, namespace: prod}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    patch: {operation: INSERT_BEFORE, value: {name: envoy.lua}}
";
    std::fs::write(&file, yaml).unwrap();
    let path = file.to_str().unwrap();
    let expected = [
        format!("warning: {path}:9:5: spec.http[0].timout: unknown field \"timout\""),
        format!(
            "warning: {path}:11:1: EnvoyFilter prod/lua is not supported by the Trellis data plane: its patches are not applied"
        ),
    ];
    let validate = trellis(&["validate", "-f", path]);
    let stderr = text(&validate.stderr);
    assert_eq!(stderr.lines().collect::<Vec<_>>(), expected, "{stderr}");
    assert_eq!(validate.status.code(), Some(0), "{stderr}");
    let analyze = trellis(&["analyze", "-f", path]);
    let stderr = text(&analyze.stderr);
    for line in &expected {
        assert!(stderr.lines().any(|l| l == line), "{stderr}");
    }
}

#[test]
fn validate_checks_a_mesh_config_file() {
    let directory = tempfile::tempdir().unwrap();
    let bad = directory.path().join("mesh.yaml");
    std::fs::write(&bad, "trustDomain: example.org\ndefaultConfig:\n  concurrency: -1\n  holdApplicationUntilProxyStart: true\n").unwrap();
    let output = trellis(&["validate", "--mesh-config", bad.to_str().unwrap()]);
    let stderr = text(&output.stderr);
    let path = bad.display();
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            format!(
                "warning: {path}:4:3: defaultConfig.holdApplicationUntilProxyStart: unknown field \"holdApplicationUntilProxyStart\""
            ),
            format!(
                "error: {path}:3:3: defaultConfig.concurrency: concurrency must be greater than or equal to 0"
            ),
        ],
        "{stderr}"
    );
    assert_eq!(output.status.code(), Some(1));
    let good = directory.path().join("good.yaml");
    std::fs::write(
        &good,
        "trustDomain: example.org\noutboundTrafficPolicy: {mode: REGISTRY_ONLY}\n",
    )
    .unwrap();
    let networking = bookinfo("networking");
    let output = trellis(&[
        "validate",
        "--mesh-config",
        good.to_str().unwrap(),
        "-f",
        &networking,
    ]);
    assert_eq!(text(&output.stderr), "");
    assert_eq!(output.status.code(), Some(0));
    assert!(text(&output.stdout).contains("good.yaml\" is valid"));
}

#[test]
fn a_deny_policy_on_paths_warns_unless_the_mesh_config_decodes_and_merges_slashes() {
    let directory = tempfile::tempdir().unwrap();
    let policy = directory.path().join("deny-admin.yaml");
    std::fs::write(
        &policy,
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-admin}\nspec:\n  action: DENY\n  rules: [{to: [{operation: {paths: [/admin*]}}]}]\n",
    )
    .unwrap();
    let policy = policy.to_string_lossy().into_owned();
    let output = trellis(&["analyze", &policy]);
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("Warning [TRL0001] (AuthorizationPolicy default/deny-admin)")
            && stdout.contains("path normalization is BASE"),
        "{stdout}"
    );
    let mesh = directory.path().join("mesh.yaml");
    std::fs::write(
        &mesh,
        "pathNormalization: {normalization: DECODE_AND_MERGE_SLASHES}\n",
    )
    .unwrap();
    let mesh = mesh.to_string_lossy().into_owned();
    let output = trellis(&["analyze", "--meshConfigFile", &mesh, &policy]);
    assert_eq!(output.status.code(), Some(0));
    assert!(!text(&output.stdout).contains("TRL0001"));
    std::fs::write(directory.path().join("mesh.yaml"), "pathNormalization: 1\n").unwrap();
    let output = trellis(&["analyze", "--mesh-config", &mesh, &policy]);
    assert_ne!(output.status.code(), Some(0));
    assert!(
        text(&output.stderr).contains("pathNormalization"),
        "{}",
        text(&output.stderr)
    );
}
