//! Istio's sidecar capture rules, generated from a [`CaptureConfig`] for
//! one address family. The rules, their order and the chain names follow
//! istio-iptables, so `iptables-save` in a Trellis pod reads like one in
//! an Istio pod.

use crate::config::{CaptureConfig, InboundMode, Port, Selection};
use crate::rule::{Chain, Family, Is, Match, Rule, RuleSet, Table, Target};

/// In TPROXY mode the proxy's connections to the app over `lo` carry this
/// mark so that ISTIO_INBOUND lets them through instead of capturing them
/// again (Istio's fixed value).
pub const OUTBOUND_MARK: u32 = 1338;

/// The comment carried by the rules capture puts straight into built-in
/// chains without jumping to an Istio chain (TPROXY mode's mark rules).
pub const CLEANUP_TAG: &str = "trellis-capture";

/// The capture rules of `family` for `config`.
pub fn rule_set(config: &CaptureConfig, family: Family) -> RuleSet {
    let mut rules = Builder {
        config,
        family,
        set: RuleSet {
            family,
            chains: Vec::new(),
            rules: Vec::new(),
        },
    };
    rules.inbound();
    rules.outbound();
    if config.inbound_mode == InboundMode::Tproxy {
        rules.tproxy_marks();
    }
    rules.set
}

struct Builder<'a> {
    config: &'a CaptureConfig,
    family: Family,
    set: RuleSet,
}

impl Builder<'_> {
    fn chain(&mut self, table: Table, chain: Chain) {
        self.set.chains.push((table, chain));
    }

    fn append(&mut self, table: Table, chain: Chain, matches: Vec<Match>, target: Target) {
        self.set.rules.push(Rule {
            table,
            chain,
            matches,
            target,
        });
    }

    fn inbound_table(&self) -> Table {
        match self.config.inbound_mode {
            InboundMode::Redirect => Table::Nat,
            InboundMode::Tproxy => Table::Mangle,
        }
    }

    /// PREROUTING -> ISTIO_INBOUND, which captures the selected ports
    /// except the proxy's own. An empty port list captures no inbound.
    fn inbound(&mut self) {
        let config = self.config;
        if config.inbound_ports == Selection::Only(Vec::new()) {
            return;
        }
        let table = self.inbound_table();
        self.chain(table, Chain::IstioInbound);
        if config.inbound_mode == InboundMode::Tproxy {
            self.tproxy_chains();
        }
        self.append(
            table,
            Chain::Prerouting,
            vec![Match::Tcp],
            Target::Jump(Chain::IstioInbound),
        );
        let tunnel = port_match(config.inbound_tunnel_port);
        self.append(table, Chain::IstioInbound, tunnel, Target::Return);
        match &config.inbound_ports {
            Selection::All => {
                for port in &config.inbound_ports_exclude {
                    self.append(
                        table,
                        Chain::IstioInbound,
                        port_match(*port),
                        Target::Return,
                    );
                }
                self.capture_inbound(vec![Match::Tcp]);
            }
            Selection::Only(ports) => {
                for port in ports {
                    self.capture_inbound(port_match(*port));
                }
            }
        }
    }

    fn capture_inbound(&mut self, matches: Vec<Match>) {
        match self.config.inbound_mode {
            InboundMode::Redirect => {
                let target = Target::Jump(Chain::IstioInRedirect);
                self.append(Table::Nat, Chain::IstioInbound, matches, target);
            }
            InboundMode::Tproxy => {
                // Packets of connections the proxy already accepted go
                // straight to its socket; only new ones need TPROXY.
                let mut established = matches.clone();
                established.push(Match::Established);
                let divert = Target::Jump(Chain::IstioDivert);
                self.append(Table::Mangle, Chain::IstioInbound, established, divert);
                let tproxy = Target::Jump(Chain::IstioTproxy);
                self.append(Table::Mangle, Chain::IstioInbound, matches, tproxy);
            }
        }
    }

    /// ISTIO_DIVERT marks packets for the local route table; ISTIO_TPROXY
    /// hands new connections to the inbound port. ISTIO_INBOUND first lets
    /// through what must not be captured again.
    fn tproxy_chains(&mut self) {
        let (mark, localhost) = (self.config.tproxy_mark, self.family.localhost());
        self.chain(Table::Mangle, Chain::IstioDivert);
        self.chain(Table::Mangle, Chain::IstioTproxy);
        self.append(
            Table::Mangle,
            Chain::IstioDivert,
            vec![],
            Target::SetMark(mark),
        );
        self.append(Table::Mangle, Chain::IstioDivert, vec![], Target::Accept);
        let port = self.config.inbound_port;
        let not_localhost = vec![Match::Destination(Is::Not, localhost), Match::Tcp];
        self.append(
            Table::Mangle,
            Chain::IstioTproxy,
            not_localhost,
            Target::Tproxy { port, mark },
        );
        let guards = [
            // Already diverted: never loop back into the proxy.
            vec![Match::Tcp, Match::Mark(Is::Equal, mark)],
            // The proxy's passthrough connections to the app.
            vec![
                Match::Tcp,
                Match::Source(self.family.inbound_passthrough_source()),
                Match::InLoopback,
            ],
            // The app calling itself over lo, unless the proxy marked it.
            vec![
                Match::Tcp,
                Match::InLoopback,
                Match::Mark(Is::Not, OUTBOUND_MARK),
            ],
        ];
        for guard in guards {
            self.append(Table::Mangle, Chain::IstioInbound, guard, Target::Return);
        }
    }

    /// OUTPUT -> ISTIO_OUTPUT, which sends the selected destinations to
    /// ISTIO_REDIRECT except the proxy's own traffic, loopback and the
    /// excluded ports and ranges.
    fn outbound(&mut self) {
        let (config, family) = (self.config, self.family);
        for chain in [
            Chain::IstioRedirect,
            Chain::IstioInRedirect,
            Chain::IstioOutput,
        ] {
            self.chain(Table::Nat, chain);
        }
        let to_outbound = Target::Redirect(config.outbound_port);
        self.append(
            Table::Nat,
            Chain::IstioRedirect,
            vec![Match::Tcp],
            to_outbound,
        );
        let to_inbound = Target::Redirect(config.inbound_port);
        self.append(
            Table::Nat,
            Chain::IstioInRedirect,
            vec![Match::Tcp],
            to_inbound,
        );
        self.append(
            Table::Nat,
            Chain::Output,
            vec![Match::Tcp],
            Target::Jump(Chain::IstioOutput),
        );
        for port in &config.outbound_ports_exclude {
            self.output(port_match(*port), Target::Return);
        }
        let passthrough = family.inbound_passthrough_source();
        self.output(
            vec![Match::OutLoopback, Match::Source(passthrough)],
            Target::Return,
        );
        for uid in &config.proxy_uids {
            self.exclude_proxy(|is| Match::OwnerUid(is, *uid));
        }
        for gid in &config.proxy_gids {
            self.exclude_proxy(|is| Match::OwnerGid(is, *gid));
        }
        let localhost = Match::Destination(Is::Equal, family.localhost());
        self.output(vec![localhost], Target::Return);
        for cidr in config
            .outbound_cidrs_exclude
            .iter()
            .filter(|c| family.includes(c))
        {
            self.output(vec![Match::Destination(Is::Equal, *cidr)], Target::Return);
        }
        for port in &config.outbound_ports_include {
            self.output(port_match(*port), Target::Jump(Chain::IstioRedirect));
        }
        self.redirect_outbound_cidrs();
    }

    fn output(&mut self, matches: Vec<Match>, target: Target) {
        self.append(Table::Nat, Chain::IstioOutput, matches, target);
    }

    /// The proxy's own connections are never captured, with one
    /// exception: the proxy reaching this pod's own address over lo (an
    /// app calling itself through a Service) goes to the inbound port.
    /// Apps' other traffic over lo is left alone, unless the user listed a
    /// loopback range to capture.
    fn exclude_proxy(&mut self, owner: impl Fn(Is) -> Match) {
        let not_localhost = Match::Destination(Is::Not, self.family.localhost());
        let to_self = vec![Match::OutLoopback, not_localhost, owner(Is::Equal)];
        self.output(to_self, Target::Jump(Chain::IstioInRedirect));
        if !self.config.captures_loopback() {
            self.output(vec![Match::OutLoopback, owner(Is::Not)], Target::Return);
        }
        self.output(vec![owner(Is::Equal)], Target::Return);
    }

    fn redirect_outbound_cidrs(&mut self) {
        let to_proxy = Target::Jump(Chain::IstioRedirect);
        match &self.config.outbound_cidrs {
            Selection::All => self.output(vec![], to_proxy),
            Selection::Only(cidrs) => {
                let family = self.family;
                let cidrs: Vec<_> = cidrs.iter().filter(|c| family.includes(c)).collect();
                if cidrs.is_empty() {
                    return;
                }
                for cidr in cidrs {
                    let matches = vec![Match::Destination(Is::Equal, *cidr)];
                    self.output(matches, to_proxy.clone());
                }
                self.output(vec![], Target::Return);
            }
        }
    }

    /// TPROXY mode's marks in the built-in mangle chains: keep the mark on
    /// the connection so replies from the app route back to the proxy,
    /// and mark the proxy's own connections to the app.
    fn tproxy_marks(&mut self) {
        let (mark, localhost) = (self.config.tproxy_mark, self.family.localhost());
        let tag = Match::Comment(CLEANUP_TAG);
        let marked = vec![Match::Tcp, Match::Mark(Is::Equal, mark), tag.clone()];
        self.append(
            Table::Mangle,
            Chain::Prerouting,
            marked,
            Target::SaveConnMark,
        );
        let marked_lo = vec![
            Match::Tcp,
            Match::OutLoopback,
            Match::Mark(Is::Equal, mark),
            tag.clone(),
        ];
        self.append(Table::Mangle, Chain::Output, marked_lo, Target::Return);
        let uids = self
            .config
            .proxy_uids
            .iter()
            .map(|uid| Match::OwnerUid(Is::Equal, *uid));
        let gids = self
            .config
            .proxy_gids
            .iter()
            .map(|gid| Match::OwnerGid(Is::Equal, *gid));
        for owner in uids.chain(gids).collect::<Vec<_>>() {
            let not_localhost = Match::Destination(Is::Not, localhost);
            let matches = vec![
                not_localhost,
                Match::Tcp,
                Match::OutLoopback,
                owner,
                tag.clone(),
            ];
            self.append(
                Table::Mangle,
                Chain::Output,
                matches,
                Target::SetMark(OUTBOUND_MARK),
            );
        }
        let connmark = vec![Match::Tcp, Match::ConnMark(mark), tag];
        self.append(
            Table::Mangle,
            Chain::Output,
            connmark,
            Target::RestoreConnMark,
        );
    }
}

fn port_match(port: Port) -> Vec<Match> {
    vec![Match::Tcp, Match::DestinationPort(Is::Equal, port)]
}
