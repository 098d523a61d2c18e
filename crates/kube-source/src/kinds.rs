//! The kinds the Kubernetes source watches, and how each becomes config.

use kube::discovery::{ApiResource, Discovery, verbs};

/// How a watched kind's objects become snapshot resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Read with `trellis_api`'s parser, as a file holding it would be.
    Config,
    /// Pods: each running pod with an IP that is ready becomes a workload
    /// (an endpoint of the Services selecting it).
    Workloads(Readiness),
    /// EndpointSlices: which pods are ready endpoints.
    EndpointSlices,
}

/// Where a pod's readiness to take traffic comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Its Ready condition: clusters without EndpointSlices.
    PodCondition,
    /// The EndpointSlices listing it: ready and not terminating there.
    EndpointSlices,
}

/// Identifies a wanted kind: (group, kind).
pub type KindId = (&'static str, &'static str);

/// A kind to watch when the API server serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WantedKind {
    pub group: &'static str,
    pub kind: &'static str,
    pub role: Role,
    /// Without it the source cannot work (core kinds); Istio kinds whose
    /// CRDs are not installed are skipped.
    pub required: bool,
}

const NETWORKING: &str = "networking.istio.io";
const SECURITY: &str = "security.istio.io";
const TELEMETRY: &str = "telemetry.istio.io";
/// Trellis's own kinds (ServiceLevelObjective), served when its CRD is.
const TRELLIS: &str = "trellis.io";

const DISCOVERY: &str = "discovery.k8s.io";
const PODS: Role = Role::Workloads(Readiness::PodCondition);

macro_rules! wanted {
    ($($group:expr, $kind:ident, $role:expr, $required:literal;)*) => {
        pub const WANTED_KINDS: &[WantedKind] = &[$(WantedKind {
            group: $group,
            kind: stringify!($kind),
            role: $role,
            required: $required,
        },)*];
    };
}

// Istio kinds Trellis does not read are still watched when served: the
// parser reports them once as unsupported, exactly as the directory source
// does, instead of the source silently ignoring them.
wanted! {
    "", Namespace, Role::Config, true;
    "", Service, Role::Config, true;
    "", ServiceAccount, Role::Config, true;
    "", Pod, PODS, true;
    DISCOVERY, EndpointSlice, Role::EndpointSlices, false;
    NETWORKING, VirtualService, Role::Config, false;
    NETWORKING, DestinationRule, Role::Config, false;
    NETWORKING, Gateway, Role::Config, false;
    NETWORKING, ServiceEntry, Role::Config, false;
    NETWORKING, WorkloadEntry, Role::Config, false;
    NETWORKING, WorkloadGroup, Role::Config, false;
    NETWORKING, Sidecar, Role::Config, false;
    NETWORKING, EnvoyFilter, Role::Config, false;
    NETWORKING, ProxyConfig, Role::Config, false;
    SECURITY, PeerAuthentication, Role::Config, false;
    SECURITY, RequestAuthentication, Role::Config, false;
    SECURITY, AuthorizationPolicy, Role::Config, false;
    TELEMETRY, Telemetry, Role::Config, false;
    TRELLIS, ServiceLevelObjective, Role::Config, false;
}

/// A kind the server serves, at the version it prefers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedKind {
    pub resource: ApiResource,
    pub role: Role,
}

/// What discovery found: the kinds to watch, and the optional ones the
/// server does not serve (Istio CRDs not installed).
#[derive(Debug)]
pub struct Resolved {
    pub served: Vec<(KindId, ServedKind)>,
    pub not_served: Vec<KindId>,
}

/// The groups discovery needs to look at.
pub fn wanted_groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = WANTED_KINDS.iter().map(|kind| kind.group).collect();
    groups.dedup();
    groups
}

/// Matches the wanted kinds against discovery: the served ones (each at its
/// group's preferred version), or the first required kind that is missing.
/// Pods take their readiness from EndpointSlices when those are served.
pub fn resolve(discovery: &Discovery) -> Result<Resolved, &'static WantedKind> {
    let mut resolved = Resolved {
        served: Vec::new(),
        not_served: Vec::new(),
    };
    for wanted in WANTED_KINDS {
        let found = discovery
            .get(wanted.group)
            .and_then(|group| group.recommended_kind(wanted.kind))
            .filter(|(_, capabilities)| {
                capabilities.supports_operation(verbs::LIST)
                    && capabilities.supports_operation(verbs::WATCH)
            });
        let id = (wanted.group, wanted.kind);
        match found {
            Some((resource, _)) => resolved.served.push((
                id,
                ServedKind {
                    resource,
                    role: wanted.role,
                },
            )),
            None if wanted.required => return Err(wanted),
            None => resolved.not_served.push(id),
        }
    }
    let slices_served = resolved
        .served
        .iter()
        .any(|(_, kind)| kind.role == Role::EndpointSlices);
    if slices_served {
        for (_, kind) in &mut resolved.served {
            if kind.role == PODS {
                kind.role = Role::Workloads(Readiness::EndpointSlices);
            }
        }
    }
    Ok(resolved)
}
