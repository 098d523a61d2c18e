//! Fault injection as Istio emits it: the HTTP fault filter sits in every
//! outbound HTTP connection manager with an empty config, and each route
//! with a `fault` carries its delay and abort in `typed_per_filter_config`.

use std::collections::HashMap;

use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{
    FaultDelay, fault_delay::FaultDelaySecifier,
};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    FaultAbort, HttpFault, fault_abort::ErrorType,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent::DenominatorType};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use trellis_api::{HttpFaultInjection, HttpRoute, Resource, VirtualService};

use crate::build::duration;

pub const FAULT_FILTER: &str = "envoy.filters.http.fault";

/// The filter as it appears in the connection manager: routes configure it.
pub fn fault_filter() -> HttpFilter {
    HttpFilter {
        name: FAULT_FILTER.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
            HttpFault::default(),
        ))),
        ..Default::default()
    }
}

/// An Istio percentage (0-100, fractional) as Envoy's parts per million,
/// the precision Istio's pilot uses.
pub fn fractional_percent(percent: f64) -> FractionalPercent {
    FractionalPercent {
        numerator: (percent.clamp(0.0, 100.0) * 10_000.0).round() as u32,
        denominator: DenominatorType::Million as i32,
    }
}

/// The route's per-filter config: empty without a translatable fault.
pub fn per_route_config(vs: &Resource<VirtualService>, rule: &HttpRoute) -> HashMap<String, Any> {
    let Some(fault) = rule.fault.as_ref().and_then(|f| http_fault(vs, f)) else {
        return HashMap::new();
    };
    HashMap::from([(FAULT_FILTER.to_string(), pack_any(fault))])
}

fn http_fault(vs: &Resource<VirtualService>, fault: &HttpFaultInjection) -> Option<HttpFault> {
    let delay = fault.delay.as_ref().and_then(|delay| {
        let Some(fixed) = delay.fixed_delay.as_deref() else {
            tracing::warn!(
                virtual_service = vs.name(),
                "exponentialDelay is not supported (as in Istio); delay skipped"
            );
            return None;
        };
        let fixed = trellis_api::parse_duration(fixed).ok()?;
        Some(FaultDelay {
            fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(duration(fixed))),
            // Unset means no request is delayed, as Istio documents.
            percentage: percent(delay.percentage.map(|p| p.value), delay.percent),
        })
    });
    let abort = fault.abort.as_ref().and_then(|abort| {
        let error_type = match (abort.http_status, abort.grpc_status.as_deref()) {
            (Some(status), _) => ErrorType::HttpStatus(status.max(0) as u32),
            (None, Some(name)) => match grpc_code(name) {
                Some(code) => ErrorType::GrpcStatus(code),
                None => {
                    tracing::warn!(
                        virtual_service = vs.name(),
                        grpc_status = name,
                        "unknown gRPC status; abort skipped"
                    );
                    return None;
                }
            },
            (None, None) => {
                tracing::warn!(
                    virtual_service = vs.name(),
                    "http2Error aborts are not supported (as in Istio); abort skipped"
                );
                return None;
            }
        };
        Some(FaultAbort {
            error_type: Some(error_type),
            percentage: percent(abort.percentage.map(|p| p.value), None),
            ..Default::default()
        })
    });
    (delay.is_some() || abort.is_some()).then_some(HttpFault {
        delay,
        abort,
        ..Default::default()
    })
}

fn percent(percentage: Option<f64>, legacy_integer: Option<i32>) -> Option<FractionalPercent> {
    percentage
        .or(legacy_integer.map(f64::from))
        .map(fractional_percent)
}

/// gRPC status codes by the names Istio accepts (numbers work too).
fn grpc_code(name: &str) -> Option<u32> {
    const CODES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    if let Ok(code) = name.trim().parse::<u32>() {
        return (code < CODES.len() as u32).then_some(code);
    }
    CODES
        .iter()
        .position(|code| code.eq_ignore_ascii_case(name.trim()))
        .map(|index| index as u32)
}
