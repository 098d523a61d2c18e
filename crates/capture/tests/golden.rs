//! Golden tests: `trellis iptables` flags in, the `--dry-run` rule sets
//! out, compared with `testdata/NAME.golden`. The flags go through the
//! same clap parser users hit. Set `UPDATE_GOLDEN=1` to rewrite the files
//! after a deliberate change, then review the diff.

use std::path::PathBuf;

use clap::Parser;
use trellis_capture::{IptablesArgs, dry_run};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: IptablesArgs,
}

fn rules_for(flags: &[&str]) -> String {
    let cli = Cli::try_parse_from(std::iter::once("iptables").chain(flags.iter().copied()))
        .unwrap_or_else(|error| panic!("flags {flags:?} refused: {error}"));
    dry_run(&cli.args.config())
}

fn check(name: &str, flags: &[&str]) {
    let actual = rules_for(flags);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("testdata/{name}.golden"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).expect("writing golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}; run with UPDATE_GOLDEN=1", path.display()));
    assert!(
        actual == expected,
        "{} differs from the generated rules; rerun with UPDATE_GOLDEN=1 and review the diff\n--- generated\n{actual}",
        path.display()
    );
}

#[test]
fn defaults_capture_all_tcp_both_ways() {
    check("defaults", &[]);
}

#[test]
fn defaults_are_what_istios_injector_passes() {
    let injector = [
        "-p",
        "15001",
        "-z",
        "15006",
        "-u",
        "1337",
        "-m",
        "REDIRECT",
        "-i",
        "*",
        "-x",
        "",
        "-b",
        "*",
        "-d",
        "15090,15021,15020",
    ];
    assert_eq!(rules_for(&injector), rules_for(&[]));
}

#[test]
fn listed_inbound_ports_and_outbound_ranges() {
    check(
        "include",
        &[
            "-b",
            "9080,8443",
            "-i",
            "10.96.0.0/12,fd00:10:96::/112",
            "-q",
            "3306",
        ],
    );
}

#[test]
fn excluded_ports_and_ranges() {
    check(
        "exclude",
        &[
            "--istio-local-exclude-ports",
            "15090,15021,15020,22",
            "--istio-service-exclude-cidr",
            "169.254.169.254/32,10.0.0.0/8,2001:db8::/32",
            "--istio-local-outbound-ports-exclude",
            "5432,6379",
            "--proxy-uid",
            "1337,1338",
            "--proxy-gid",
            "2000",
        ],
    );
}

#[test]
fn tproxy_inbound_mode() {
    check(
        "tproxy",
        &[
            "-m",
            "TPROXY",
            "-b",
            "*",
            "-d",
            "15090,15021,15020",
            "-t",
            "1337",
            "-r",
            "133",
        ],
    );
}

#[test]
fn tproxy_with_listed_ports() {
    check(
        "tproxy-ports",
        &["-m", "TPROXY", "-b", "9080", "-t", "4242"],
    );
}

#[test]
fn nothing_captured_when_both_lists_are_empty() {
    check("empty", &["-b", "", "-i", ""]);
}

#[test]
fn listing_loopback_captures_apps_calling_themselves() {
    check("loopback", &["-i", "127.0.0.1/32,10.0.0.0/8"]);
}

#[test]
fn ipv6_rules_use_ipv6_loopback_and_ranges_only() {
    let rules = rules_for(&[
        "-i",
        "10.0.0.0/8,2001:db8::/32",
        "-x",
        "192.168.0.0/16,2001:db8:1::/48",
    ]);
    let (v4, v6) = rules.split_once("# IPv6").expect("an IPv6 section");
    assert!(
        v6.contains("-A ISTIO_OUTPUT -o lo -s ::6/128 -j RETURN"),
        "{v6}"
    );
    assert!(v6.contains("! -d ::1/128"), "{v6}");
    assert!(
        v6.contains("-A ISTIO_OUTPUT -d 2001:db8:1::/48 -j RETURN"),
        "{v6}"
    );
    assert!(
        v6.contains("-A ISTIO_OUTPUT -d 2001:db8::/32 -j ISTIO_REDIRECT"),
        "{v6}"
    );
    assert!(
        !v6.contains("10.0.0.0") && !v6.contains("127.0.0") && !v6.contains("192.168"),
        "{v6}"
    );
    assert!(!v4.contains("2001:db8"), "{v4}");
}

#[test]
fn flags_are_validated() {
    for flags in [
        &["-x", "*"][..],
        &["-b", "80,http"],
        &["-i", "10.0.0.0/33"],
        &["-m", "TUNNEL"],
        &["-p", "0"],
        &["-u", "istio-proxy"],
        &["--dry-run", "--cleanup"],
    ] {
        let args = std::iter::once("iptables").chain(flags.iter().copied());
        assert!(Cli::try_parse_from(args).is_err(), "{flags:?} was accepted");
    }
}

#[test]
fn gid_defaults_to_the_uid() {
    let rules = rules_for(&["-u", "4242"]);
    assert!(
        rules.contains("-m owner --gid-owner 4242 -j RETURN"),
        "{rules}"
    );
    assert!(!rules.contains("1337"), "{rules}");
}

#[test]
fn tproxy_marks_stay_when_no_inbound_port_is_captured() {
    let rules = rules_for(&["-m", "TPROXY", "-b", ""]);
    let (v4, _) = rules.split_once("# IPv6").expect("an IPv6 section");
    assert!(
        v4.contains("*mangle\n-A PREROUTING -p tcp -m mark --mark 1337"),
        "{v4}"
    );
    assert!(
        !v4.contains("ISTIO_INBOUND") && !v4.contains("ISTIO_TPROXY"),
        "{v4}"
    );
}
