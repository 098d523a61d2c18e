//! YAML reading with source positions: a positioned node tree per document,
//! a serde deserializer over it that reports field paths, and the map from
//! field path to line and column.

mod de;
mod path;
mod tree;

pub(crate) use de::{DeError, UnknownField, from_node};
pub(crate) use path::{PositionMap, child_key};
pub(crate) use tree::{Node, parse_documents};
