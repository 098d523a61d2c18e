//! TPROXY mode's policy routing: packets carrying the TPROXY mark are
//! delivered locally (to the proxy's transparent socket) through their own
//! route table, as Istio sets up with `ip rule` and `ip route`.

use crate::config::CaptureConfig;
use crate::error::CaptureError;
use crate::rule::Family;
use crate::system;

const IP: &str = "ip";

/// `ip rule ... fwmark MARK lookup TABLE` plus `local default dev lo` in
/// TABLE, for one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TproxyRoute {
    family: Family,
    mark: u32,
    table: u32,
}

impl TproxyRoute {
    pub fn new(config: &CaptureConfig, family: Family) -> Self {
        TproxyRoute {
            family,
            mark: config.tproxy_mark,
            table: config.tproxy_route_table,
        }
    }

    fn rule_args(&self, verb: &str) -> Vec<String> {
        let (mark, table) = (self.mark.to_string(), self.table.to_string());
        [
            self.family.ip_flag(),
            "rule",
            verb,
            "fwmark",
            &mark,
            "lookup",
            &table,
        ]
        .map(String::from)
        .to_vec()
    }

    fn route_args(&self, verb: &str) -> Vec<String> {
        let table = self.table.to_string();
        [
            self.family.ip_flag(),
            "route",
            verb,
            "local",
            "default",
            "dev",
            "lo",
            "table",
            &table,
        ]
        .map(String::from)
        .to_vec()
    }

    /// The commands `install` runs, as a user would type them.
    pub fn describe(&self) -> [String; 2] {
        [self.rule_args("add"), self.route_args("replace")]
            .map(|args| format!("{IP} {}", args.join(" ")))
    }

    pub fn install(&self) -> Result<(), CaptureError> {
        let added = system::run(IP, &as_strs(&self.rule_args("add")), None)?;
        // The kernel refuses a second identical rule; that one is ours.
        if !added.status.success() && !added.stderr.contains("File exists") {
            system::run_checked(IP, &as_strs(&self.rule_args("add")), None)?;
        }
        system::run_checked(IP, &as_strs(&self.route_args("replace")), None)?;
        Ok(())
    }

    /// Removes the rule and the route if present. Without `ip` there is
    /// nothing to remove: install could not have added them.
    pub fn remove(&self) -> Result<(), CaptureError> {
        let flag = self.family.ip_flag();
        let rules = match system::run_checked(IP, &[flag, "rule", "show"], None) {
            Err(CaptureError::ToolMissing { .. }) => return Ok(()),
            rules => rules?,
        };
        for _ in rules.lines().filter(|line| self.is_our_rule(line)) {
            system::run_checked(IP, &as_strs(&self.rule_args("del")), None)?;
        }
        let table = self.table.to_string();
        // Listing a table that was never created fails ("FIB table does
        // not exist"): then there is no route to remove either.
        let routes = system::run(IP, &[flag, "route", "show", "table", &table], None)?;
        let ours = |line: &str| line.trim_start().starts_with("local default dev lo");
        if routes.status.success() && routes.stdout.lines().any(ours) {
            system::run_checked(IP, &as_strs(&self.route_args("del")), None)?;
        }
        Ok(())
    }

    /// `ip rule show` prints marks in hex: `from all fwmark 0x539 lookup 133`.
    fn is_our_rule(&self, line: &str) -> bool {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let mark = tokens
            .windows(2)
            .any(|pair| pair[0] == "fwmark" && parse_number(pair[1]) == Some(self.mark));
        let table = tokens
            .windows(2)
            .any(|pair| pair[0] == "lookup" && pair[1] == self.table.to_string());
        mark && table
    }
}

fn parse_number(text: &str) -> Option<u32> {
    match text.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> TproxyRoute {
        TproxyRoute {
            family: Family::V6,
            mark: 1337,
            table: 133,
        }
    }

    #[test]
    fn commands_read_as_istio_documents_them() {
        assert_eq!(
            route().describe(),
            [
                "ip -6 rule add fwmark 1337 lookup 133".to_owned(),
                "ip -6 route replace local default dev lo table 133".to_owned(),
            ]
        );
    }

    #[test]
    fn only_our_mark_and_table_are_ours() {
        assert!(route().is_our_rule("32765:\tfrom all fwmark 0x539 lookup 133"));
        assert!(!route().is_our_rule("32765:\tfrom all fwmark 0x539 lookup 134"));
        assert!(!route().is_our_rule("32765:\tfrom all fwmark 0x53a lookup 133"));
        assert!(!route().is_our_rule("0:\tfrom all lookup local"));
    }
}
