//! The HTTP fault filter (`envoy.filters.http.fault`) as Istio configures
//! it: empty in the connection manager, with each route's delay and abort
//! in its `typed_per_filter_config`. Delays happen before routing to the
//! upstream (so they do not count against the route timeout); aborts
//! answer without contacting it.

use std::collections::HashMap;
use std::time::Duration;

use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    HttpFault, fault_abort::ErrorType,
};
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
use envoy_types::pb::google::protobuf::Any;
use http::{HeaderValue, Response, StatusCode, header};
use prost::{Message, Name};

use crate::body::{ProxyBody, full};
use crate::unsupported::{Unsupported, reject_if};

pub const FAULT_FILTER: &str = "envoy.filters.http.fault";
const ABORT_BODY: &str = "fault filter abort";

/// A share of requests, as Envoy's `FractionalPercent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fraction {
    numerator: u32,
    denominator: u32,
}

impl Fraction {
    /// An unset percentage selects no request (Envoy's default of 0).
    pub fn compile(percent: Option<&FractionalPercent>) -> Result<Fraction, Unsupported> {
        let Some(percent) = percent else {
            return Ok(Fraction {
                numerator: 0,
                denominator: 100,
            });
        };
        let denominator = match DenominatorType::try_from(percent.denominator) {
            Ok(DenominatorType::Hundred) => 100,
            Ok(DenominatorType::TenThousand) => 10_000,
            Ok(DenominatorType::Million) => 1_000_000,
            Err(_) => return Err(Unsupported("fractional percent denominator")),
        };
        Ok(Fraction {
            numerator: percent.numerator.min(denominator),
            denominator,
        })
    }

    pub fn roll(self) -> bool {
        self.numerator > 0 && rand::random_range(0..self.denominator) < self.numerator
    }
}

#[derive(Debug)]
pub struct FaultPolicy {
    delay: Option<(Duration, Fraction)>,
    abort: Option<(Abort, Fraction)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Abort {
    Http(StatusCode),
    /// A gRPC status, answered the gRPC way: HTTP 200, `grpc-status`.
    Grpc(u32),
}

impl FaultPolicy {
    /// The route's fault config among its per-filter configs; any other
    /// filter's config is refused, as that filter is not implemented.
    pub fn from_per_filter_config(
        configs: &HashMap<String, Any>,
    ) -> Result<Option<FaultPolicy>, Unsupported> {
        let mut fault = None;
        for (name, any) in configs {
            reject_if(
                name != FAULT_FILTER,
                "typed_per_filter_config for a filter other than envoy.filters.http.fault",
            )?;
            reject_if(
                any.type_url != HttpFault::type_url(),
                "fault filter config type",
            )?;
            let config = HttpFault::decode(any.value.as_slice())
                .map_err(|_| Unsupported("undecodable fault filter config"))?;
            fault = Some(FaultPolicy::compile(&config)?);
        }
        Ok(fault)
    }

    /// Runtime keys are ignored: without a runtime, their defaults hold.
    pub fn compile(config: &HttpFault) -> Result<FaultPolicy, Unsupported> {
        reject_if(
            !config.upstream_cluster.is_empty(),
            "fault.upstream_cluster",
        )?;
        reject_if(!config.headers.is_empty(), "fault.headers")?;
        reject_if(
            !config.downstream_nodes.is_empty(),
            "fault.downstream_nodes",
        )?;
        reject_if(
            config.max_active_faults.is_some(),
            "fault.max_active_faults",
        )?;
        reject_if(
            config.response_rate_limit.is_some(),
            "fault.response_rate_limit",
        )?;
        let delay = match &config.delay {
            None => None,
            Some(delay) => match &delay.fault_delay_secifier {
                Some(FaultDelaySecifier::FixedDelay(d)) => Some((
                    Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32),
                    Fraction::compile(delay.percentage.as_ref())?,
                )),
                _ => return Err(Unsupported("fault delay other than fixed_delay")),
            },
        };
        let abort = match &config.abort {
            None => None,
            Some(abort) => {
                let kind = match abort.error_type {
                    Some(ErrorType::HttpStatus(status)) => Abort::Http(
                        u16::try_from(status)
                            .ok()
                            .and_then(|s| StatusCode::from_u16(s).ok())
                            .ok_or(Unsupported("fault abort http_status"))?,
                    ),
                    Some(ErrorType::GrpcStatus(status)) => Abort::Grpc(status),
                    _ => return Err(Unsupported("fault abort other than an HTTP or gRPC status")),
                };
                Some((kind, Fraction::compile(abort.percentage.as_ref())?))
            }
        };
        Ok(FaultPolicy { delay, abort })
    }

    /// The delay to inject into this request, if its roll says so.
    pub fn delay(&self) -> Option<Duration> {
        self.delay
            .filter(|(_, fraction)| fraction.roll())
            .map(|(delay, _)| delay)
    }

    /// The response that replaces this request's, if its roll says so.
    pub fn abort(&self) -> Option<Response<ProxyBody>> {
        let (abort, _) = self.abort.filter(|(_, fraction)| fraction.roll())?;
        let mut response = Response::new(full(ABORT_BODY));
        match abort {
            Abort::Http(status) => {
                *response.status_mut() = status;
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            }
            Abort::Grpc(status) => {
                *response.body_mut() = full("");
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/grpc"),
                );
                headers.insert("grpc-status", HeaderValue::from(status));
                headers.insert("grpc-message", HeaderValue::from_static(ABORT_BODY));
            }
        }
        Some(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::extensions::filters::common::fault::v3::FaultDelay;
    use envoy_types::pb::envoy::extensions::filters::http::fault::v3::FaultAbort;
    use envoy_types::pb::google::protobuf::Duration as XdsDuration;
    use envoy_types::util::pack_any;

    fn percent(numerator: u32) -> Option<FractionalPercent> {
        Some(FractionalPercent {
            numerator,
            denominator: DenominatorType::Million as i32,
        })
    }

    fn policy(delay_share: u32, abort: ErrorType, abort_share: u32) -> FaultPolicy {
        let config = HttpFault {
            delay: Some(FaultDelay {
                fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(XdsDuration {
                    seconds: 7,
                    nanos: 0,
                })),
                percentage: percent(delay_share),
            }),
            abort: Some(FaultAbort {
                error_type: Some(abort),
                percentage: percent(abort_share),
                ..Default::default()
            }),
            ..Default::default()
        };
        let configs = HashMap::from([(FAULT_FILTER.to_string(), pack_any(config))]);
        FaultPolicy::from_per_filter_config(&configs)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn full_shares_always_fire_and_zero_shares_never() {
        let always = policy(1_000_000, ErrorType::HttpStatus(555), 1_000_000);
        let never = policy(0, ErrorType::HttpStatus(555), 0);
        for _ in 0..100 {
            assert_eq!(always.delay(), Some(Duration::from_secs(7)));
            assert_eq!(always.abort().unwrap().status().as_u16(), 555);
            assert_eq!(never.delay(), None);
            assert!(never.abort().is_none());
        }
    }

    #[test]
    fn partial_shares_fire_within_binomial_bounds() {
        let half = policy(500_000, ErrorType::HttpStatus(503), 100_000);
        let (mut delayed, mut aborted) = (0, 0);
        for _ in 0..10_000 {
            delayed += usize::from(half.delay().is_some());
            aborted += usize::from(half.abort().is_some());
        }
        // Mean ± about 5 standard deviations.
        assert!((4750..=5250).contains(&delayed), "{delayed}");
        assert!((850..=1150).contains(&aborted), "{aborted}");
    }

    #[test]
    fn grpc_aborts_answer_the_grpc_way() {
        let response = policy(0, ErrorType::GrpcStatus(14), 1_000_000)
            .abort()
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["grpc-status"], "14");
        assert_eq!(response.headers()["content-type"], "application/grpc");
    }

    #[test]
    fn other_filters_and_fault_features_are_refused() {
        let other = HashMap::from([(
            "envoy.filters.http.cors".to_string(),
            pack_any(HttpFault::default()),
        )]);
        assert!(FaultPolicy::from_per_filter_config(&other).is_err());
        let limited = HttpFault {
            max_active_faults: Some(Default::default()),
            ..Default::default()
        };
        assert_eq!(
            FaultPolicy::compile(&limited).unwrap_err(),
            Unsupported("fault.max_active_faults")
        );
    }
}
