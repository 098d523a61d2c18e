//! Request mirroring (`RouteAction.request_mirror_policies`): a copy of the
//! request goes to another cluster, fire and forget. The copy's authority
//! gets `-shadow` appended to its host (before any port: `reviews:9080`
//! becomes `reviews-shadow:9080`), its response is read and dropped, and
//! nothing about it can delay or fail the original request. Only bodies
//! the proxy could buffer (see [`crate::replay`]) are mirrored.

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::route_action::RequestMirrorPolicy;
use http::{HeaderValue, header};
use http_body_util::BodyExt;

use crate::attempt::UpstreamHead;
use crate::fault::Fraction;
use crate::replay::RequestBody;
use crate::state::ProxyState;
use crate::unsupported::{Unsupported, reject_if};

/// How long a mirrored request may take when its route has no timeout.
const MIRROR_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct MirrorPolicy {
    cluster: String,
    share: Option<Fraction>,
    append_suffix: bool,
}

impl MirrorPolicy {
    pub fn compile(policy: &RequestMirrorPolicy) -> Result<MirrorPolicy, Unsupported> {
        reject_if(
            policy.cluster.is_empty(),
            "request mirror policy without a cluster",
        )?;
        reject_if(
            !policy.cluster_header.is_empty(),
            "request_mirror_policies.cluster_header",
        )?;
        // Without a runtime, the runtime key's default value is the share.
        let share = match &policy.runtime_fraction {
            Some(fraction) => Some(Fraction::compile(fraction.default_value.as_ref())?),
            None => None,
        };
        Ok(MirrorPolicy {
            cluster: policy.cluster.clone(),
            share,
            append_suffix: !policy.disable_shadow_host_suffix_append,
        })
    }

    fn selected(&self) -> bool {
        self.share.is_none_or(Fraction::roll)
    }
}

/// Sends this request's copies, if its body can be replayed.
pub fn send_copies(
    policies: &[MirrorPolicy],
    head: &UpstreamHead,
    body: &RequestBody,
    state: &Arc<ProxyState>,
    timeout: Option<Duration>,
) {
    for policy in policies.iter().filter(|p| p.selected()) {
        let Some(copy) = body.replay() else {
            tracing::debug!(cluster = policy.cluster, "request body too long to mirror");
            return;
        };
        let Some(cluster) = state.clusters.load().get(&policy.cluster).cloned() else {
            tracing::debug!(cluster = policy.cluster, "mirror cluster not found");
            continue;
        };
        let Some(endpoint) = cluster.pick() else {
            continue;
        };
        let mut request = head.request(&endpoint, cluster.spec.http2, None, copy);
        if policy.append_suffix
            && let Some(host) = request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
            && let Ok(shadow) = HeaderValue::from_str(&shadow_host(host))
        {
            request.headers_mut().insert(header::HOST, shadow);
        }
        let deadline = timeout.unwrap_or(MIRROR_DEADLINE);
        tokio::spawn(async move {
            let exchange = async {
                let response = cluster.client.request(request).await.ok()?;
                response.into_body().collect().await.ok()
            };
            if tokio::time::timeout(deadline, exchange).await.is_err() {
                tracing::debug!(cluster = cluster.spec.name, "mirrored request timed out");
            }
        });
    }
}

fn shadow_host(authority: &str) -> String {
    if let Some((host, port)) = authority.rsplit_once(':')
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && (!host.contains(':') || host.ends_with(']'))
    {
        return format!("{host}-shadow:{port}");
    }
    format!("{authority}-shadow")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_suffix_goes_before_the_port() {
        assert_eq!(shadow_host("reviews:9080"), "reviews-shadow:9080");
        assert_eq!(shadow_host("reviews"), "reviews-shadow");
        assert_eq!(
            shadow_host("reviews.default.svc.cluster.local"),
            "reviews.default.svc.cluster.local-shadow"
        );
    }
}
