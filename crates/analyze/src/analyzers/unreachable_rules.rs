//! IST0130 and IST0131: VirtualService rules that can never be used
//! because earlier rules take all their traffic, and matches that earlier
//! matches make dead. Rules are checked within one VirtualService.

use trellis_api::{HttpMatchRequest, HttpRoute, Resource, VirtualService};

use super::http_match::covers;
use crate::message::{
    Message, VIRTUAL_SERVICE_INEFFECTIVE_MATCH, VIRTUAL_SERVICE_UNREACHABLE_RULE,
};
use crate::model::Model;

pub(crate) fn analyze(model: &Model<'_>, messages: &mut Vec<Message>) {
    for vs in &model.virtual_services {
        let mut report = Report {
            vs,
            messages: &mut *messages,
        };
        http_rules(&mut report, &vs.spec.http);
        let tcp: Vec<_> = vs
            .spec
            .tcp
            .iter()
            .map(|rule| (None, rule.r#match.as_slice()))
            .collect();
        l4_rules(&mut report, &tcp);
        let tls: Vec<_> = vs
            .spec
            .tls
            .iter()
            .map(|rule| (None, rule.r#match.as_slice()))
            .collect();
        l4_rules(&mut report, &tls);
    }
}

struct Report<'r> {
    vs: &'r Resource<VirtualService>,
    messages: &'r mut Vec<Message>,
}

impl Report<'_> {
    fn unreachable(&mut self, rule: &str, reason: &str) {
        let text = format!("VirtualService rule {rule} not used ({reason}).");
        self.messages.push(Message::new(
            &VIRTUAL_SERVICE_UNREACHABLE_RULE,
            self.vs,
            text,
        ));
    }

    fn ineffective(&mut self, rule: &str, request: &str, earlier_rule: &str) {
        let text = format!(
            "VirtualService rule {rule} match {request} is not used (duplicate/overlapping match in rule {earlier_rule})."
        );
        self.messages.push(Message::new(
            &VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
            self.vs,
            text,
        ));
    }
}

/// Istio names a rule or match by its `name` (quoted) or its index (`#1`).
fn label(name: Option<&str>, index: usize) -> String {
    match name {
        Some(name) if !name.is_empty() => crate::message::quoted(name),
        _ => format!("#{index}"),
    }
}

fn http_rules(report: &mut Report<'_>, rules: &[HttpRoute]) {
    let mut catch_all_seen = false;
    let mut earlier: Vec<(usize, &HttpMatchRequest)> = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let rule_label = label(rule.name.as_deref(), index);
        if rule.r#match.is_empty() {
            if catch_all_seen {
                report.unreachable(&rule_label, "only the last rule can have no matches");
            }
            catch_all_seen = true;
            continue;
        }
        if catch_all_seen {
            report.unreachable(&rule_label, "route without matches defined before");
            continue;
        }
        let mut dead = 0;
        for (m, request) in rule.r#match.iter().enumerate() {
            match earlier
                .iter()
                .find(|(_, previous)| covers(previous, request))
            {
                Some(&(owner, _)) => {
                    let owner_label = label(rules[owner].name.as_deref(), owner);
                    report.ineffective(
                        &rule_label,
                        &label(request.name.as_deref(), m),
                        &owner_label,
                    );
                    dead += 1;
                }
                None => earlier.push((index, request)),
            }
        }
        if dead == rule.r#match.len() {
            report.unreachable(&rule_label, "all matches used by prior rules");
        }
    }
}

/// TCP and TLS rules: a match is dead when an earlier one is identical.
fn l4_rules<M: PartialEq>(report: &mut Report<'_>, rules: &[(Option<&str>, &[M])]) {
    let mut catch_all_seen = false;
    let mut earlier: Vec<(usize, &M)> = Vec::new();
    for (index, (name, matches)) in rules.iter().enumerate() {
        let rule_label = label(*name, index);
        if matches.is_empty() {
            if catch_all_seen {
                report.unreachable(&rule_label, "only the last rule can have no matches");
            }
            catch_all_seen = true;
            continue;
        }
        let mut dead = 0;
        for (m, request) in matches.iter().enumerate() {
            match earlier.iter().find(|(_, previous)| *previous == request) {
                Some((owner, _)) => {
                    report.ineffective(
                        &rule_label,
                        &format!("#{m}"),
                        &label(rules[*owner].0, *owner),
                    );
                    dead += 1;
                }
                None => earlier.push((index, request)),
            }
        }
        if dead == matches.len() {
            report.unreachable(&rule_label, "all matches used by prior rules");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::messages;
    use super::*;

    fn vs(rules: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: vs}}\nspec:\n  hosts: [reviews]\n{rules}"
        )
    }

    const ROUTE: &str = "route: [{destination: {host: reviews}}]";

    #[test]
    fn rules_shadowed_by_earlier_rules_are_reported() {
        let w = |text: &str| {
            format!("Warning [IST0130] (VirtualService default/vs) VirtualService rule {text}")
        };
        let i = |text: &str| {
            format!("Info [IST0131] (VirtualService default/vs) VirtualService rule {text}")
        };
        let cases: [(String, Vec<String>); 7] = [
            (
                format!(
                    "  http:\n  - match: [{{uri: {{prefix: /a}}}}]\n    {ROUTE}\n  - {ROUTE}\n"
                ),
                vec![],
            ),
            (
                format!("  http:\n  - {ROUTE}\n  - {ROUTE}\n"),
                vec![w("#1 not used (only the last rule can have no matches).")],
            ),
            (
                format!(
                    "  http:\n  - {ROUTE}\n  - match: [{{uri: {{prefix: /a}}}}]\n    {ROUTE}\n"
                ),
                vec![w("#1 not used (route without matches defined before).")],
            ),
            (
                format!(
                    "  http:\n  - match: [{{uri: {{exact: /a}}}}]\n    {ROUTE}\n  - match: [{{uri: {{exact: /a}}}}, {{uri: {{exact: /b}}}}]\n    {ROUTE}\n"
                ),
                vec![i(
                    "#1 match #0 is not used (duplicate/overlapping match in rule #0).",
                )],
            ),
            (
                format!(
                    "  http:\n  - name: api\n    match: [{{uri: {{prefix: /api}}}}]\n    {ROUTE}\n  - name: v1\n    match: [{{name: exact, uri: {{exact: /api/v1}}}}]\n    {ROUTE}\n"
                ),
                vec![
                    i(
                        "\"v1\" match \"exact\" is not used (duplicate/overlapping match in rule \"api\").",
                    ),
                    w("\"v1\" not used (all matches used by prior rules)."),
                ],
            ),
            (
                format!(
                    "  http:\n  - match: [{{headers: {{end-user: {{exact: jason}}}}}}]\n    {ROUTE}\n  - match: [{{uri: {{prefix: /}}}}]\n    {ROUTE}\n"
                ),
                vec![],
            ),
            (
                format!(
                    "  tcp:\n  - match: [{{port: 27017}}]\n    {ROUTE}\n  - match: [{{port: 27017}}]\n    {ROUTE}\n"
                ),
                vec![
                    i("#1 match #0 is not used (duplicate/overlapping match in rule #0)."),
                    w("#1 not used (all matches used by prior rules)."),
                ],
            ),
        ];
        for (rules, expected) in cases {
            assert_eq!(messages(analyze, &vs(&rules)), expected, "{rules}");
        }
    }
}
