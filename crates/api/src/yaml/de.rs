//! A serde `Deserializer` over the positioned YAML tree. Every error it
//! returns carries the field path and the position of the innermost node it
//! concerns, which `serde_derive` alone cannot provide.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Unexpected, Visitor};

use super::path::{child_index, child_key};
use super::tree::{Node, Scalar, Value, is_null_text};
use crate::error::Position;

/// A schema error: the message, and once known, the field and its position.
#[derive(Debug)]
pub(crate) struct DeError {
    pub(crate) message: String,
    pub(crate) location: Option<(String, Position)>,
}

impl DeError {
    /// Sets the location unless an inner node already set a more precise one.
    fn located(mut self, field: &str, position: Position) -> DeError {
        if self.location.is_none() {
            self.location = Some((field.to_string(), position));
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(message: T) -> DeError {
        DeError {
            message: message.to_string(),
            location: None,
        }
    }

    // The field path already names where it is; Istio says just this.
    fn unknown_field(field: &str, _expected: &'static [&'static str]) -> DeError {
        DeError::custom(format_args!("unknown field \"{field}\""))
    }

    fn missing_field(field: &'static str) -> DeError {
        DeError::custom(format_args!("missing required field \"{field}\""))
    }
}

/// A field the target type does not have: its path and where its key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnknownField {
    pub(crate) field: String,
    pub(crate) position: Position,
}

/// Where the deserializer records the unknown fields it skips.
type UnknownFields = RefCell<Vec<UnknownField>>;

/// Deserializes `node`, whose field path is `path`, into a `T`, with the
/// fields `T` does not have (serde skips them), in document order.
pub(crate) fn from_node<T: DeserializeOwned>(
    node: &Node,
    path: &str,
) -> Result<(T, Vec<UnknownField>), DeError> {
    let unknown = UnknownFields::default();
    let value = T::deserialize(NodeDeserializer::new(node, path.to_string(), &unknown))
        .map_err(|error| error.located(path, node.position))?;
    Ok((value, unknown.into_inner()))
}

/// A plain scalar read with YAML 1.2's core schema.
enum Resolved<'a> {
    Null,
    Bool(bool),
    Signed(i64),
    Unsigned(u64),
    Float(f64),
    Text(&'a str),
}

fn resolve(scalar: &Scalar) -> Resolved<'_> {
    let text = scalar.text.as_str();
    if !scalar.plain {
        return Resolved::Text(text);
    }
    if is_null_text(text) {
        return Resolved::Null;
    }
    match text {
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        _ => {}
    }
    if let Some(integer) = resolve_integer(text) {
        return integer;
    }
    resolve_float(text).map_or(Resolved::Text(text), Resolved::Float)
}

fn resolve_integer(text: &str) -> Option<Resolved<'static>> {
    let radix_digits = |prefix: &str, radix: u32| {
        let digits = text.strip_prefix(prefix)?;
        u64::from_str_radix(digits, radix).ok()
    };
    if let Some(value) = radix_digits("0x", 16).or_else(|| radix_digits("0o", 8)) {
        return Some(Resolved::Unsigned(value));
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Ok(value) = text.parse::<i64>() {
        return Some(Resolved::Signed(value));
    }
    text.parse::<u64>().ok().map(Resolved::Unsigned)
}

fn resolve_float(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let negative = text.starts_with('-');
    match unsigned {
        ".inf" | ".Inf" | ".INF" => {
            return Some(if negative {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            });
        }
        ".nan" | ".NaN" | ".NAN" if unsigned.len() == text.len() => return Some(f64::NAN),
        _ => {}
    }
    let numeric = unsigned
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    let has_digit = unsigned.bytes().any(|b| b.is_ascii_digit());
    if numeric && has_digit {
        text.parse::<f64>().ok()
    } else {
        None
    }
}

struct NodeDeserializer<'a> {
    node: &'a Node,
    path: String,
    unknown: &'a UnknownFields,
    /// Where to point when this node turns out to be an unknown field: its
    /// key for a mapping value, the node itself otherwise.
    reported_at: Position,
}

impl<'a> NodeDeserializer<'a> {
    fn new(node: &'a Node, path: String, unknown: &'a UnknownFields) -> NodeDeserializer<'a> {
        NodeDeserializer {
            node,
            path,
            unknown,
            reported_at: node.position,
        }
    }

    fn unexpected(&self) -> Unexpected<'a> {
        match &self.node.value {
            Value::Sequence(_) => Unexpected::Seq,
            Value::Mapping(_) => Unexpected::Map,
            Value::Scalar(scalar) => match resolve(scalar) {
                Resolved::Null => Unexpected::Other("null"),
                Resolved::Bool(value) => Unexpected::Bool(value),
                Resolved::Signed(value) => Unexpected::Signed(value),
                Resolved::Unsigned(value) => Unexpected::Unsigned(value),
                Resolved::Float(value) => Unexpected::Float(value),
                Resolved::Text(text) => Unexpected::Str(text),
            },
        }
    }

    fn resolved(&self) -> Option<Resolved<'a>> {
        match &self.node.value {
            Value::Scalar(scalar) => Some(resolve(scalar)),
            _ => None,
        }
    }

    fn deserialize_number<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.resolved() {
            Some(Resolved::Signed(value)) => visitor.visit_i64(value),
            Some(Resolved::Unsigned(value)) => visitor.visit_u64(value),
            Some(Resolved::Float(value)) => visitor.visit_f64(value),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    fn visit_sequence<'de, V: Visitor<'de>>(
        &self,
        items: &'a [Node],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_seq(SequenceAccess {
            items: items.iter().enumerate(),
            parent: &self.path,
            unknown: self.unknown,
        })
    }

    fn visit_mapping<'de, V: Visitor<'de>>(
        &self,
        entries: &'a [(Node, Node)],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_map(MappingAccess {
            entries: entries.iter(),
            parent: &self.path,
            unknown: self.unknown,
            seen: HashSet::new(),
            pending_value: None,
        })
    }
}

macro_rules! forward_to_number {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.deserialize_number(visitor)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Sequence(items) => self.visit_sequence(items, visitor),
            Value::Mapping(entries) => self.visit_mapping(entries, visitor),
            Value::Scalar(scalar) => match resolve(scalar) {
                Resolved::Null => visitor.visit_unit(),
                Resolved::Bool(value) => visitor.visit_bool(value),
                Resolved::Signed(value) => visitor.visit_i64(value),
                Resolved::Unsigned(value) => visitor.visit_u64(value),
                Resolved::Float(value) => visitor.visit_f64(value),
                Resolved::Text(text) => visitor.visit_str(text),
            },
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.resolved() {
            Some(Resolved::Bool(value)) => visitor.visit_bool(value),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    forward_to_number! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_f32 deserialize_f64
    }

    /// Any scalar can be read as text: Kubernetes users write `version: 1`
    /// for a string label and expect it to work. Null reads as "", as a
    /// JSON null does in Kubernetes.
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Scalar(scalar) if scalar.plain && is_null_text(&scalar.text) => {
                visitor.visit_str("")
            }
            Value::Scalar(scalar) => visitor.visit_str(&scalar.text),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_unit()
        } else {
            Err(de::Error::invalid_type(self.unexpected(), &visitor))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    /// A null list reads as empty, as Kubernetes reads a JSON null.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Sequence(items) => self.visit_sequence(items, visitor),
            _ if self.node.is_null() => self.visit_sequence(&[], visitor),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    /// A null mapping reads as empty, as Kubernetes reads a JSON null.
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Mapping(entries) => self.visit_mapping(entries, visitor),
            _ if self.node.is_null() => self.visit_mapping(&[], visitor),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    /// Unit variants are scalars (`mode: ISTIO_MUTUAL`); others are
    /// single-key mappings (`{exact: x}`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Scalar(_) => visitor.visit_enum(UnitVariant(self)),
            Value::Mapping(entries) if entries.len() == 1 => {
                let (key, value) = &entries[0];
                visitor.visit_enum(VariantEntry {
                    key,
                    value,
                    parent: &self.path,
                    unknown: self.unknown,
                })
            }
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    /// serde skips a field its type does not have through here: recorded
    /// (the loader decides whether it deserves a warning), and skipped
    /// without looking inside, as it can hold anything.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.unknown.borrow_mut().push(UnknownField {
            field: self.path,
            position: self.reported_at,
        });
        visitor.visit_unit()
    }
}

struct SequenceAccess<'a, 'p> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
    parent: &'p str,
    unknown: &'a UnknownFields,
}

impl<'de> de::SeqAccess<'de> for SequenceAccess<'_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some((index, item)) = self.items.next() else {
            return Ok(None);
        };
        let path = child_index(self.parent, index);
        seed.deserialize(NodeDeserializer::new(item, path.clone(), self.unknown))
            .map(Some)
            .map_err(|error| error.located(&path, item.position))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MappingAccess<'a, 'p> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    parent: &'p str,
    unknown: &'a UnknownFields,
    seen: HashSet<&'a str>,
    /// The value of the key just returned, its path and the key's position.
    pending_value: Option<(&'a Node, String, Position)>,
}

impl<'de> de::MapAccess<'de> for MappingAccess<'_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let Some(key_text) = key.as_scalar() else {
            let error: DeError = de::Error::custom("mapping keys must be scalars");
            return Err(error.located(self.parent, key.position));
        };
        let path = child_key(self.parent, key_text);
        if !self.seen.insert(key_text) {
            let error: DeError = de::Error::custom(format_args!("duplicate key \"{key_text}\""));
            return Err(error.located(&path, key.position));
        }
        let result = seed
            .deserialize(NodeDeserializer::new(key, path.clone(), self.unknown))
            .map_err(|error| error.located(&path, key.position))?;
        self.pending_value = Some((value, path, key.position));
        Ok(Some(result))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((value, path, position)) = self.pending_value.take() else {
            return Err(de::Error::custom("mapping value requested before its key"));
        };
        let deserializer = NodeDeserializer {
            reported_at: position,
            ..NodeDeserializer::new(value, path.clone(), self.unknown)
        };
        seed.deserialize(deserializer)
            .map_err(|error| error.located(&path, position))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// An enum written as a bare scalar: only unit variants fit.
struct UnitVariant<'a>(NodeDeserializer<'a>);

impl<'de, 'a> de::EnumAccess<'de> for UnitVariant<'a> {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), DeError> {
        let variant = seed.deserialize(NodeDeserializer::new(
            self.0.node,
            self.0.path.clone(),
            self.0.unknown,
        ))?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for UnitVariant<'_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value, DeError> {
        Err(de::Error::custom("expected a mapping with a single key"))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, DeError> {
        Err(de::Error::custom("expected a mapping with a single key"))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, DeError> {
        Err(de::Error::custom("expected a mapping with a single key"))
    }
}

/// An enum written as a single-key mapping: the key names the variant.
struct VariantEntry<'a, 'p> {
    key: &'a Node,
    value: &'a Node,
    parent: &'p str,
    unknown: &'a UnknownFields,
}

impl VariantEntry<'_, '_> {
    fn path(&self) -> String {
        child_key(self.parent, self.key.as_scalar().unwrap_or_default())
    }
}

impl<'de> de::EnumAccess<'de> for VariantEntry<'_, '_> {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), DeError> {
        let path = self.path();
        let variant = seed
            .deserialize(NodeDeserializer::new(self.key, path.clone(), self.unknown))
            .map_err(|error| error.located(&path, self.key.position))?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for VariantEntry<'_, '_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        if self.value.is_null() {
            return Ok(());
        }
        let error: DeError = de::Error::custom("this variant takes no value");
        Err(error.located(&self.path(), self.key.position))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self.value_deserializer())
            .map_err(|error| error.located(&self.path(), self.key.position))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self.value_deserializer(), visitor)
            .map_err(|error| error.located(&self.path(), self.key.position))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_map(self.value_deserializer(), visitor)
            .map_err(|error| error.located(&self.path(), self.key.position))
    }
}

impl VariantEntry<'_, '_> {
    fn value_deserializer(&self) -> NodeDeserializer<'_> {
        NodeDeserializer::new(self.value, self.path(), self.unknown)
    }
}
