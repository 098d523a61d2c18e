//! `outlierDetection` as Istio's `applyOutlierDetection` writes it:
//! success-rate detection off, each consecutive-error detector enforced
//! 100% when its threshold is positive (0 turns it off), and
//! `minHealthPercent` as the cluster's healthy panic threshold (0 when
//! unset: Istio disables panic mode, which rarely suits services with few
//! pods).

use envoy_types::pb::envoy::config::cluster::v3::{
    Cluster, OutlierDetection, cluster::CommonLbConfig,
};
use envoy_types::pb::envoy::r#type::v3::Percent;
use trellis_api::{OutlierDetection as IstioOutlier, parse_duration};

use crate::build::{duration, uint32};

pub fn apply(cluster: &mut Cluster, outlier: &IstioOutlier) {
    let mut out = OutlierDetection {
        enforcing_success_rate: Some(uint32(0)),
        ..Default::default()
    };
    let deprecated = outlier
        .consecutive_errors
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0);
    if let Some(errors) = deprecated {
        // Istio reads the deprecated field as gateway errors only.
        out.consecutive_gateway_failure = Some(uint32(errors));
        out.enforcing_consecutive_gateway_failure = Some(uint32(100));
        out.enforcing_consecutive_5xx = Some(uint32(0));
    }
    if let Some(errors) = outlier.consecutive_5xx_errors {
        out.consecutive_5xx = Some(uint32(errors));
        out.enforcing_consecutive_5xx = Some(uint32(enforcing(errors)));
    }
    if let Some(errors) = outlier.consecutive_gateway_errors {
        out.consecutive_gateway_failure = Some(uint32(errors));
        out.enforcing_consecutive_gateway_failure = Some(uint32(enforcing(errors)));
    }
    let parsed = |text: Option<&str>| text.and_then(|t| parse_duration(t).ok()).map(duration);
    out.interval = parsed(outlier.interval.as_deref());
    out.base_ejection_time = parsed(outlier.base_ejection_time.as_deref());
    out.max_ejection_percent = outlier
        .max_ejection_percent
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p > 0)
        .map(uint32);
    if outlier.split_external_local_origin_errors {
        out.split_external_local_origin_errors = true;
        if let Some(failures) = outlier.consecutive_local_origin_failures.filter(|n| *n > 0) {
            out.consecutive_local_origin_failure = Some(uint32(failures));
            out.enforcing_consecutive_local_origin_failure = Some(uint32(100));
        }
        out.enforcing_local_origin_success_rate = Some(uint32(0));
    }
    cluster.outlier_detection = Some(out);
    let min_health = outlier.min_health_percent.unwrap_or(0).clamp(0, 100);
    cluster
        .common_lb_config
        .get_or_insert_with(CommonLbConfig::default)
        .healthy_panic_threshold = Some(Percent {
        value: f64::from(min_health),
    });
}

fn enforcing(threshold: u32) -> u32 {
    if threshold > 0 { 100 } else { 0 }
}
