//! Transparent capture for sidecars: `trellis iptables`, Trellis' version
//! of Istio's istio-iptables (the init step of a pod).
//!
//! The rules are generated as typed values ([`rule_set`] builds a
//! [`RuleSet`] of [`Rule`]s from a [`CaptureConfig`]), rendered to
//! `iptables-restore` input and applied with `iptables-restore --noflush`:
//! per table one commit that also removes whatever capture rules were
//! there before, so running it twice leaves one copy. IPv6 gets the same
//! rules through `ip6tables-restore` whenever the host has IPv6.
//!
//! Chain names, rule order and flags are Istio's, so `iptables-save` in a
//! Trellis pod reads like one in an Istio pod. Differences, on purpose:
//! - `-b` and `-i` default to `*` (what Istio's injector always passes), so
//!   a bare `trellis iptables` captures all TCP both ways.
//! - Rules TPROXY mode puts straight into the built-in mangle chains carry
//!   the comment `trellis-capture`, so `--cleanup` finds them without the
//!   original flags. Everything else `--cleanup` removes is found by name:
//!   the ISTIO_* chains and the rules jumping to them.
//! - DNS capture (`ISTIO_OUTPUT_DNS`, the raw table), interface exclusion
//!   and KubeVirt interfaces are not implemented.

#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]

mod args;
mod config;
mod error;
mod generate;
mod installed;
mod routes;
mod rule;
mod system;

use std::fmt::Write as _;

pub use args::IptablesArgs;
pub use config::{CaptureConfig, Cidr, Id, InboundMode, List, Port, Selection};
pub use error::CaptureError;
pub use generate::{CLEANUP_TAG, OUTBOUND_MARK, rule_set};
pub use rule::{Chain, Family, Is, Match, Rule, RuleSet, Table, Target};

use installed::Installed;
use routes::TproxyRoute;

/// Runs `trellis iptables`: prints, installs or removes the capture rules.
pub fn run(args: &IptablesArgs) -> Result<(), CaptureError> {
    let config = args.config();
    if args.dry_run {
        print!("{}", dry_run(&config));
        return Ok(());
    }
    system::require_net_admin()?;
    let families = host_families();
    for family in &families {
        if args.cleanup {
            cleanup(&config, *family)?;
        } else {
            install(&config, *family)?;
        }
    }
    let families = families
        .iter()
        .map(|family| family.label())
        .collect::<Vec<_>>()
        .join(", ");
    if args.cleanup {
        println!("capture rules removed ({families})");
    } else {
        println!("capture rules installed ({families}); `iptables-save` shows them");
    }
    Ok(())
}

/// What `--dry-run` prints: each family's restore input, and in TPROXY
/// mode the routing commands as comments.
pub fn dry_run(config: &CaptureConfig) -> String {
    let mut out = String::new();
    for family in [Family::V4, Family::V6] {
        let _ = writeln!(
            out,
            "# {}: {} --noflush",
            family.label(),
            family.restore_tool()
        );
        out.push_str(&rule_set(config, family).to_restore_input());
        if config.inbound_mode == InboundMode::Tproxy {
            for command in TproxyRoute::new(config, family).describe() {
                let _ = writeln!(out, "# {command}");
            }
        }
    }
    out
}

/// IPv4 always; IPv6 when the kernel has it (a pod could otherwise bypass
/// its sidecar over IPv6).
fn host_families() -> Vec<Family> {
    let mut families = vec![Family::V4];
    if std::path::Path::new("/proc/net/if_inet6").exists() {
        families.push(Family::V6);
    }
    families
}

fn install(config: &CaptureConfig, family: Family) -> Result<(), CaptureError> {
    let new = rule_set(config, family);
    let installed = Installed::parse(&system::run_checked(family.save_tool(), &[], None)?);
    let input = installed.replace_with(Some(&new));
    system::run_checked(family.restore_tool(), &["--noflush"], Some(&input))?;
    if config.inbound_mode == InboundMode::Tproxy {
        TproxyRoute::new(config, family).install()?;
    }
    tracing::info!(
        family = family.label(),
        rules = new.rules.len(),
        "capture rules installed"
    );
    Ok(())
}

fn cleanup(config: &CaptureConfig, family: Family) -> Result<(), CaptureError> {
    let installed = Installed::parse(&system::run_checked(family.save_tool(), &[], None)?);
    if !installed.is_empty() {
        let input = installed.replace_with(None);
        system::run_checked(family.restore_tool(), &["--noflush"], Some(&input))?;
    }
    TproxyRoute::new(config, family).remove()
}
