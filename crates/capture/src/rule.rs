//! A small typed model of the iptables rules capture uses (table, chain,
//! matches, target) and its rendering to `iptables-restore` input.
//! Rules are never assembled as ad-hoc strings: every token comes from
//! one of these types.

use std::fmt;

use crate::config::{Cidr, Id, Port};
use crate::installed::Installed;

/// The address family a rule set is for: `iptables` or `ip6tables`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The loopback address apps use to talk to the proxy and each other.
    pub fn localhost(self) -> Cidr {
        match self {
            Family::V4 => Cidr::host([127, 0, 0, 1].into()),
            Family::V6 => Cidr::host(std::net::Ipv6Addr::LOCALHOST.into()),
        }
    }

    /// The source address the proxy binds for inbound passthrough
    /// connections to the app, so they are told apart from app traffic.
    pub fn inbound_passthrough_source(self) -> Cidr {
        match self {
            Family::V4 => Cidr::host([127, 0, 0, 6].into()),
            Family::V6 => Cidr::host([0, 0, 0, 0, 0, 0, 0, 6].into()),
        }
    }

    pub fn includes(self, cidr: &Cidr) -> bool {
        cidr.is_ipv4() == (self == Family::V4)
    }

    /// `iptables-restore` or `ip6tables-restore`.
    pub fn restore_tool(self) -> &'static str {
        match self {
            Family::V4 => "iptables-restore",
            Family::V6 => "ip6tables-restore",
        }
    }

    /// `iptables-save` or `ip6tables-save`.
    pub fn save_tool(self) -> &'static str {
        match self {
            Family::V4 => "iptables-save",
            Family::V6 => "ip6tables-save",
        }
    }

    /// The `ip` flag selecting this family (`-4` or `-6`).
    pub fn ip_flag(self) -> &'static str {
        match self {
            Family::V4 => "-4",
            Family::V6 => "-6",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Table {
    Mangle,
    Nat,
}

impl Table {
    pub const ALL: [Table; 2] = [Table::Mangle, Table::Nat];

    pub fn name(self) -> &'static str {
        match self {
            Table::Mangle => "mangle",
            Table::Nat => "nat",
        }
    }
}

/// The built-in chains capture hooks into, and Istio's own chains under
/// the names Istio gives them, so users' debugging habits carry over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chain {
    Prerouting,
    Output,
    IstioInbound,
    IstioRedirect,
    IstioInRedirect,
    IstioOutput,
    IstioDivert,
    IstioTproxy,
}

impl Chain {
    /// Every chain capture may create, in any table.
    pub const ISTIO: [Chain; 6] = [
        Chain::IstioInbound,
        Chain::IstioRedirect,
        Chain::IstioInRedirect,
        Chain::IstioOutput,
        Chain::IstioDivert,
        Chain::IstioTproxy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Chain::Prerouting => "PREROUTING",
            Chain::Output => "OUTPUT",
            Chain::IstioInbound => "ISTIO_INBOUND",
            Chain::IstioRedirect => "ISTIO_REDIRECT",
            Chain::IstioInRedirect => "ISTIO_IN_REDIRECT",
            Chain::IstioOutput => "ISTIO_OUTPUT",
            Chain::IstioDivert => "ISTIO_DIVERT",
            Chain::IstioTproxy => "ISTIO_TPROXY",
        }
    }

    pub fn is_builtin(self) -> bool {
        matches!(self, Chain::Prerouting | Chain::Output)
    }

    pub fn istio_named(name: &str) -> Option<Chain> {
        Chain::ISTIO.into_iter().find(|chain| chain.name() == name)
    }
}

/// Whether a match is inverted (`!`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Is {
    Equal,
    Not,
}

/// One packet match. Rendering keeps the order in which a rule lists
/// them, which is the order iptables evaluates them in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    Tcp,
    DestinationPort(Is, Port),
    Source(Cidr),
    Destination(Is, Cidr),
    InLoopback,
    OutLoopback,
    OwnerUid(Is, Id),
    OwnerGid(Is, Id),
    Mark(Is, u32),
    ConnMark(u32),
    /// Packets of connections conntrack already knows.
    Established,
    /// Tags a rule placed in a built-in chain that jumps to no Istio
    /// chain, so that `--cleanup` can find it without the original flags.
    Comment(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Jump(Chain),
    Return,
    Accept,
    Redirect(Port),
    Tproxy { port: Port, mark: u32 },
    SetMark(u32),
    SaveConnMark,
    RestoreConnMark,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub table: Table,
    pub chain: Chain,
    pub matches: Vec<Match>,
    pub target: Target,
}

/// The chains and rules of one address family, in the order they are
/// appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSet {
    pub family: Family,
    pub chains: Vec<(Table, Chain)>,
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// The rule set as `iptables-restore --noflush` input for a host with
    /// no capture rules yet: per table, the chain declarations then the
    /// rules, committed at once.
    pub fn to_restore_input(&self) -> String {
        Installed::default().replace_with(Some(self))
    }

    /// Whether any chain or rule of this set lives in `table`.
    pub fn uses(&self, table: Table) -> bool {
        self.chains_in(table).next().is_some() || self.rules.iter().any(|rule| rule.table == table)
    }

    pub fn chains_in(&self, table: Table) -> impl Iterator<Item = Chain> + '_ {
        self.chains
            .iter()
            .filter(move |(in_table, _)| *in_table == table)
            .map(|(_, chain)| *chain)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "-A {}", self.chain.name())?;
        for item in &self.matches {
            write!(f, " {item}")?;
        }
        write!(f, " {}", self.target)
    }
}

fn bang(is: Is) -> &'static str {
    match is {
        Is::Equal => "",
        Is::Not => "! ",
    }
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Match::Tcp => f.write_str("-p tcp"),
            Match::DestinationPort(is, port) => write!(f, "{}--dport {port}", bang(*is)),
            Match::Source(cidr) => write!(f, "-s {cidr}"),
            Match::Destination(is, cidr) => write!(f, "{}-d {cidr}", bang(*is)),
            Match::InLoopback => f.write_str("-i lo"),
            Match::OutLoopback => f.write_str("-o lo"),
            Match::OwnerUid(is, id) => write!(f, "-m owner {}--uid-owner {id}", bang(*is)),
            Match::OwnerGid(is, id) => write!(f, "-m owner {}--gid-owner {id}", bang(*is)),
            Match::Mark(is, mark) => write!(f, "-m mark {}--mark {mark}", bang(*is)),
            Match::ConnMark(mark) => write!(f, "-m connmark --mark {mark}"),
            Match::Established => f.write_str("-m conntrack --ctstate RELATED,ESTABLISHED"),
            Match::Comment(text) => write!(f, "-m comment --comment {text}"),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Jump(chain) => write!(f, "-j {}", chain.name()),
            Target::Return => f.write_str("-j RETURN"),
            Target::Accept => f.write_str("-j ACCEPT"),
            Target::Redirect(port) => write!(f, "-j REDIRECT --to-ports {port}"),
            Target::Tproxy { port, mark } => {
                write!(
                    f,
                    "-j TPROXY --tproxy-mark {mark}/0xffffffff --on-port {port}"
                )
            }
            Target::SetMark(mark) => write!(f, "-j MARK --set-mark {mark}"),
            Target::SaveConnMark => f.write_str("-j CONNMARK --save-mark"),
            Target::RestoreConnMark => f.write_str("-j CONNMARK --restore-mark"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_render_in_iptables_syntax() {
        let rule = Rule {
            table: Table::Nat,
            chain: Chain::IstioOutput,
            matches: vec![
                Match::OutLoopback,
                Match::Destination(Is::Not, Family::V4.localhost()),
                Match::OwnerUid(Is::Equal, Id(1337)),
            ],
            target: Target::Jump(Chain::IstioInRedirect),
        };
        assert_eq!(
            rule.to_string(),
            "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT"
        );
    }

    #[test]
    fn tables_without_chains_are_left_out() {
        let rules = RuleSet {
            family: Family::V6,
            chains: vec![(Table::Nat, Chain::IstioRedirect)],
            rules: vec![Rule {
                table: Table::Nat,
                chain: Chain::IstioRedirect,
                matches: vec![Match::Tcp],
                target: Target::Redirect(Port(15001)),
            }],
        };
        assert_eq!(
            rules.to_restore_input(),
            "*nat\n:ISTIO_REDIRECT - [0:0]\n-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001\nCOMMIT\n"
        );
    }
}
