//! `EnvoyFilter` (networking.istio.io v1alpha3): patches to the generated
//! Envoy configuration. Read so that it can be validated and reported: the
//! Trellis data plane does not apply it.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};

use super::{PolicyTargetReference, WorkloadLabels};

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EnvoyFilter {
    /// Written `workloadSelector: {labels: ...}`, as in Sidecar.
    pub workload_selector: Option<WorkloadLabels>,
    pub target_refs: Vec<PolicyTargetReference>,
    pub config_patches: Vec<EnvoyConfigObjectPatch>,
    pub priority: i32,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EnvoyConfigObjectPatch {
    /// `LISTENER`, `FILTER_CHAIN`, `NETWORK_FILTER`, `HTTP_FILTER`, ...
    pub apply_to: Option<String>,
    #[serde(rename = "match")]
    pub match_: Option<StructValue>,
    pub patch: Option<Patch>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Patch {
    /// `MERGE`, `ADD`, `REMOVE`, `INSERT_BEFORE`, `INSERT_AFTER`,
    /// `INSERT_FIRST` or `REPLACE`.
    pub operation: Option<String>,
    pub value: Option<StructValue>,
    pub filter_class: Option<String>,
}

/// Free-form configuration (a protobuf `Struct`): any YAML value.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum StructValue {
    #[default]
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    List(Vec<StructValue>),
    Map(BTreeMap<String, StructValue>),
}

impl<'de> Deserialize<'de> for StructValue {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<StructValue, D::Error> {
        deserializer.deserialize_any(StructValueVisitor)
    }
}

struct StructValueVisitor;

impl<'de> Visitor<'de> for StructValueVisitor {
    type Value = StructValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_unit<E>(self) -> Result<StructValue, E> {
        Ok(StructValue::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<StructValue, E> {
        Ok(StructValue::Bool(value))
    }

    // Protobuf `Struct` numbers are doubles.
    #[allow(clippy::cast_precision_loss)]
    fn visit_i64<E>(self, value: i64) -> Result<StructValue, E> {
        Ok(StructValue::Number(value as f64))
    }

    #[allow(clippy::cast_precision_loss)]
    fn visit_u64<E>(self, value: u64) -> Result<StructValue, E> {
        Ok(StructValue::Number(value as f64))
    }

    fn visit_f64<E>(self, value: f64) -> Result<StructValue, E> {
        Ok(StructValue::Number(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<StructValue, E> {
        Ok(StructValue::String(value.to_string()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StructValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(StructValue::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StructValue, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some((key, value)) = map.next_entry::<String, StructValue>()? {
            entries.insert(key, value);
        }
        Ok(StructValue::Map(entries))
    }
}
