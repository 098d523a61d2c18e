//! Analysis messages: istioctl's codes, names, levels and templates, and
//! the one-line text format scripts parse.

use std::fmt;

use trellis_api::{AnyResource, Resource, ResourceKey, SourceRef};

/// How serious a message is, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Level {
    #[value(name = "Info", alias = "info", alias = "INFO")]
    Info,
    #[value(name = "Warning", alias = "warning", alias = "WARNING")]
    Warning,
    #[value(name = "Error", alias = "error", alias = "ERROR")]
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Info => "Info",
            Level::Warning => "Warning",
            Level::Error => "Error",
        })
    }
}

/// One kind of message, as Istio's "Configuration analysis messages"
/// reference lists it.
#[derive(Debug, PartialEq, Eq)]
pub struct MessageType {
    pub code: &'static str,
    pub name: &'static str,
    pub level: Level,
}

impl MessageType {
    /// The reference page that explains the message and how to resolve it.
    pub fn documentation_url(&self) -> String {
        if self.code.starts_with("TRL") {
            // Trellis's own codes: the Istio page that explains the risk.
            return "https://istio.io/latest/docs/ops/best-practices/security/#understand-path-normalization-in-authorization-policy".to_owned();
        }
        format!(
            "https://istio.io/v1.28/docs/reference/config/analysis/{}/?ref=trellis-analyze",
            self.code.to_ascii_lowercase()
        )
    }
}

pub const REFERENCED_RESOURCE_NOT_FOUND: MessageType = MessageType {
    code: "IST0101",
    name: "ReferencedResourceNotFound",
    level: Level::Error,
};
pub const SCHEMA_VALIDATION_ERROR: MessageType = MessageType {
    code: "IST0106",
    name: "SchemaValidationError",
    level: Level::Error,
};
pub const CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS: MessageType = MessageType {
    code: "IST0109",
    name: "ConflictingMeshGatewayVirtualServiceHosts",
    level: Level::Error,
};
pub const PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION: MessageType = MessageType {
    code: "IST0118",
    name: "PortNameIsNotUnderNamingConvention",
    level: Level::Info,
};
pub const VIRTUAL_SERVICE_UNREACHABLE_RULE: MessageType = MessageType {
    code: "IST0130",
    name: "VirtualServiceUnreachableRule",
    level: Level::Warning,
};
pub const VIRTUAL_SERVICE_INEFFECTIVE_MATCH: MessageType = MessageType {
    code: "IST0131",
    name: "VirtualServiceIneffectiveMatch",
    level: Level::Info,
};
pub const VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY: MessageType = MessageType {
    code: "IST0132",
    name: "VirtualServiceHostNotFoundInGateway",
    level: Level::Warning,
};
/// A Warning, as istioctl reports it: a subset nothing routes to yet (such
/// as Bookinfo's `ratings` `v2-mysql`) is not an error until traffic is sent
/// to it, which IST0101 and the proxies' 503s then show.
pub const DESTINATION_RULE_SUBSET_NOT_SELECT_PODS: MessageType = MessageType {
    code: "IST0173",
    name: "DestinationRuleSubsetNotSelectPods",
    level: Level::Warning,
};
pub const UNKNOWN_DESTINATION_RULE_HOST: MessageType = MessageType {
    code: "IST0174",
    name: "UnknownDestinationRuleHost",
    level: Level::Warning,
};
pub const CONFLICTING_GATEWAYS: MessageType = MessageType {
    code: "IST0145",
    name: "ConflictingGateways",
    level: Level::Error,
};
pub const INVALID_GATEWAY_CREDENTIAL: MessageType = MessageType {
    code: "IST0161",
    name: "InvalidGatewayCredential",
    level: Level::Error,
};

/// Trellis's own: a DENY policy on paths that other spellings of the path
/// get around under the mesh's path normalization.
pub const DENY_PATHS_BYPASSABLE_BY_NORMALIZATION: MessageType = MessageType {
    code: "TRL0001",
    name: "DenyPathsBypassableByNormalization",
    level: Level::Warning,
};

/// Every message type Trellis can report; `--suppress` warns about others.
pub const ALL: [&MessageType; 12] = [
    &REFERENCED_RESOURCE_NOT_FOUND,
    &SCHEMA_VALIDATION_ERROR,
    &CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
    &PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION,
    &VIRTUAL_SERVICE_UNREACHABLE_RULE,
    &VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
    &VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
    &DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
    &UNKNOWN_DESTINATION_RULE_HOST,
    &CONFLICTING_GATEWAYS,
    &INVALID_GATEWAY_CREDENTIAL,
    &DENY_PATHS_BYPASSABLE_BY_NORMALIZATION,
];

/// The resource a message is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    pub kind: String,
    /// Empty for cluster-scoped kinds.
    pub namespace: String,
    pub name: String,
}

impl Origin {
    pub fn of(key: ResourceKey) -> Origin {
        Origin {
            kind: key.kind,
            namespace: key.namespace,
            name: key.name,
        }
    }
}

/// `Kind namespace/name`, or `Kind name` for cluster-scoped kinds, as istioctl.
impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// One finding about one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub message_type: &'static MessageType,
    pub origin: Origin,
    /// Where the resource (or the offending field) is written.
    pub reference: SourceRef,
    /// The filled-in template, without level, code or origin.
    pub text: String,
}

impl Message {
    pub fn new<T>(
        message_type: &'static MessageType,
        resource: &Resource<T>,
        text: String,
    ) -> Message {
        Message {
            message_type,
            origin: Origin::of(resource.key()),
            reference: resource.source.clone(),
            text,
        }
    }

    /// A message about a resource of any kind.
    pub fn about(
        message_type: &'static MessageType,
        resource: &AnyResource,
        text: String,
    ) -> Message {
        Message {
            message_type,
            origin: Origin::of(resource.key()),
            reference: resource.source().clone(),
            text,
        }
    }

    pub fn level(&self) -> Level {
        self.message_type.level
    }

    pub fn code(&self) -> &'static str {
        self.message_type.code
    }
}

/// `Error [IST0101] (VirtualService default/reviews) Referenced ...`.
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] ({}) {}",
            self.message_type.level, self.message_type.code, self.origin, self.text
        )
    }
}

/// A Go `%q` rendering of a string: quoted, with Go's escapes.
pub(crate) fn quoted(value: &str) -> String {
    // Go and JSON escape the printable ASCII range identically.
    serde_json::Value::String(value.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_render_like_istioctl() {
        let origin = Origin {
            kind: "VirtualService".into(),
            namespace: "default".into(),
            name: "reviews".into(),
        };
        assert_eq!(origin.to_string(), "VirtualService default/reviews");
        let namespace = Origin {
            kind: "Namespace".into(),
            namespace: String::new(),
            name: "prod".into(),
        };
        assert_eq!(namespace.to_string(), "Namespace prod");
    }

    #[test]
    fn levels_order_by_severity() {
        assert!(Level::Error > Level::Warning && Level::Warning > Level::Info);
        assert_eq!(
            REFERENCED_RESOURCE_NOT_FOUND.documentation_url(),
            "https://istio.io/v1.28/docs/reference/config/analysis/ist0101/?ref=trellis-analyze"
        );
    }
}
