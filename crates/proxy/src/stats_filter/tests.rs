use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::*;
use crate::attributes::RequestFacts;

fn config(metrics: Vec<MetricConfig>) -> Vec<u8> {
    PluginConfig {
        metrics,
        ..Default::default()
    }
    .encode_to_vec()
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Labels(Option<Arc<CustomLabels>>);

impl EncodeLabelSet for Labels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        let standard = [("reporter", "source"), ("request_protocol", "http")];
        match &self.0 {
            None => standard.as_slice().encode(encoder),
            Some(custom) => custom.encode(&standard, encoder),
        }
    }
}

fn exposition(labels: Labels) -> String {
    let family = Family::<Labels, Counter>::default();
    family.get_or_create(&labels).inc();
    let mut registry = Registry::default();
    registry.register("istio_requests", "requests", family);
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    text
}

#[test]
fn no_overrides_is_the_fast_path() {
    let spec = StatsSpec::compile(&config(Vec::new())).unwrap();
    assert!(spec.plain);
    assert!(!spec.rule(Metric::Requests).drop);
}

#[test]
fn drops_removes_replaces_and_adds_labels() {
    let spec = StatsSpec::compile(&config(vec![
        MetricConfig {
            name: "requests_total".into(),
            dimensions: [
                ("request_host".to_string(), "request.host".to_string()),
                ("reporter".to_string(), "'client'".to_string()),
            ]
            .into(),
            tags_to_remove: vec!["request_protocol".into()],
            ..Default::default()
        },
        MetricConfig {
            name: "request_bytes".into(),
            drop: true,
            ..Default::default()
        },
    ]))
    .unwrap();
    assert!(!spec.plain);
    assert!(spec.roots.request);
    assert!(spec.rule(Metric::RequestBytes).drop);
    assert!(
        spec.rule(Metric::Duration)
            .custom(&Attributes::default())
            .is_none()
    );
    let facts = RequestFacts {
        host: "reviews:9080".into(),
        ..Default::default()
    };
    let attributes = Attributes {
        request: Some(&facts),
        ..Default::default()
    };
    let custom = spec.rule(Metric::Requests).custom(&attributes);
    let text = exposition(Labels(custom));
    assert!(
        text.contains(r#"istio_requests_total{reporter="client",request_host="reviews:9080"} 1"#),
        "{text}"
    );
}

#[test]
fn an_empty_name_applies_to_every_metric() {
    let spec = StatsSpec::compile(&config(vec![MetricConfig {
        drop: true,
        ..Default::default()
    }]))
    .unwrap();
    assert!(spec.rule(Metric::Requests).drop);
    assert!(spec.rule(Metric::TcpSentBytes).drop);
}

#[test]
fn refuses_what_it_cannot_do() {
    let unknown = config(vec![MetricConfig {
        name: "my_metric".into(),
        ..Default::default()
    }]);
    assert!(StatsSpec::compile(&unknown).is_err());
    let bad_expression = config(vec![MetricConfig {
        name: "requests_total".into(),
        dimensions: [("x".to_string(), "request.host +".to_string())].into(),
        ..Default::default()
    }]);
    assert!(StatsSpec::compile(&bad_expression).is_err());
}
