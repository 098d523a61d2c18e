//! Builds a positioned tree of YAML nodes from the parser's events, one
//! tree per document. Syntax errors are per document: the parser recovers at
//! the next `---`, so one broken document does not hide the others.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Marker, Options, Parser, ScalarStyle, Span};

use crate::error::Position;

/// Deepest nesting accepted, counting aliased subtrees where they are used.
/// Far beyond any real manifest; it bounds recursion over the tree.
const MAX_DEPTH: usize = 128;

/// Most nodes one text may expand to, counting every use of an alias, so that
/// an "alias bomb" is rejected instead of exhausting memory.
const MAX_NODES: usize = 500_000;

/// A YAML node and where it starts in the text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) position: Position,
    pub(crate) value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Scalar(Scalar),
    Sequence(Vec<Node>),
    Mapping(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scalar {
    pub(crate) text: String,
    /// Plain (unquoted, untagged) scalars may be null, booleans or numbers;
    /// quoted, block and `!!str` scalars are always strings.
    pub(crate) plain: bool,
}

impl Node {
    /// A plain scalar that YAML's core schema reads as null (`~`, `null`, or nothing).
    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s) if s.plain && is_null_text(&s.text))
    }

    pub(crate) fn is_mapping(&self) -> bool {
        matches!(self.value, Value::Mapping(_))
    }

    /// The value under `key` when this node is a mapping.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Mapping(entries) => entries
                .iter()
                .find(|(k, _)| k.as_scalar() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub(crate) fn as_scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) => Some(&s.text),
            _ => None,
        }
    }
}

pub(crate) fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// A document that could not be read, with where the problem is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxError {
    pub(crate) position: Position,
    pub(crate) message: String,
}

/// Parses every document of `text`, in order. Empty documents are omitted.
pub(crate) fn parse_documents(text: &str) -> Vec<Result<Node, SyntaxError>> {
    let mut options = Options::default();
    options.set_emit_comments(false);
    let mut parser = Parser::new_from_str_with_options(text, options);
    let mut builder = TreeBuilder::default();
    let mut documents = Vec::new();
    loop {
        let failure = match parser.next_event() {
            None => break,
            Some(Ok((event, span))) => match builder.handle(event, span) {
                Ok(Some(root)) if !root.is_null() => {
                    documents.push(Ok(root));
                    continue;
                }
                Ok(_) => continue,
                Err(error) => error,
            },
            Some(Err(error)) => SyntaxError {
                position: position_of(error.marker()),
                message: error.info(),
            },
        };
        documents.push(Err(failure));
        builder = TreeBuilder::default();
        match parser.proceed_next_document() {
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => {
                documents.push(Err(SyntaxError {
                    position: position_of(error.marker()),
                    message: error.info(),
                }));
                break;
            }
        }
    }
    documents
}

fn position_of(marker: &Marker) -> Position {
    Position {
        line: marker.line().max(1),
        column: marker.col() + 1,
    }
}

/// A collection whose end event has not been seen yet.
struct OpenCollection {
    position: Position,
    anchor: usize,
    /// Node count when the collection opened, to size it for alias budgeting.
    nodes_at_start: usize,
    /// Height of the tallest child so far.
    child_height: usize,
    kind: OpenKind,
}

enum OpenKind {
    Sequence(Vec<Node>),
    Mapping {
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
    },
}

/// An anchored node kept for later aliases.
struct Anchored {
    node: Node,
    size: usize,
    height: usize,
}

#[derive(Default)]
struct TreeBuilder {
    open: Vec<OpenCollection>,
    anchors: HashMap<usize, Anchored>,
    root: Option<Node>,
    nodes: usize,
}

impl TreeBuilder {
    /// Consumes one event; returns the document's root when the document ends.
    fn handle(&mut self, event: Event<'_>, span: Span) -> Result<Option<Node>, SyntaxError> {
        let position = position_of(&span.start);
        match event {
            Event::DocumentStart(..) => {
                self.open.clear();
                self.anchors.clear();
                self.root = None;
            }
            Event::DocumentEnd => return Ok(self.root.take()),
            Event::Scalar(text, style, anchor, tag) => {
                let plain = style == ScalarStyle::Plain
                    && !tag.is_some_and(|tag| tag.is_yaml_core_schema_tag("str"));
                let value = Value::Scalar(Scalar {
                    text: text.into_owned(),
                    plain,
                });
                self.count_nodes(1, position)?;
                self.complete(Node { position, value }, anchor, 1, 1)?;
            }
            Event::SequenceStart(_, anchor, _) => {
                self.open_collection(position, anchor, OpenKind::Sequence(Vec::new()))?;
            }
            Event::MappingStart(_, anchor, _) => {
                let kind = OpenKind::Mapping {
                    entries: Vec::new(),
                    pending_key: None,
                };
                self.open_collection(position, anchor, kind)?;
            }
            Event::SequenceEnd | Event::MappingEnd => self.close_collection()?,
            Event::Alias(id) => self.expand_alias(id, position)?,
            Event::UnresolvedAlias(name) => {
                return Err(SyntaxError {
                    position,
                    message: format!("unknown anchor `{name}`"),
                });
            }
            _ => {}
        }
        Ok(None)
    }

    fn open_collection(
        &mut self,
        position: Position,
        anchor: usize,
        kind: OpenKind,
    ) -> Result<(), SyntaxError> {
        self.count_nodes(1, position)?;
        if self.open.len() >= MAX_DEPTH {
            return Err(too_deep(position));
        }
        self.open.push(OpenCollection {
            position,
            anchor,
            nodes_at_start: self.nodes,
            child_height: 0,
            kind,
        });
        Ok(())
    }

    fn close_collection(&mut self) -> Result<(), SyntaxError> {
        let Some(collection) = self.open.pop() else {
            return Ok(());
        };
        let value = match collection.kind {
            OpenKind::Sequence(items) => Value::Sequence(items),
            OpenKind::Mapping { entries, .. } => Value::Mapping(entries),
        };
        let node = Node {
            position: collection.position,
            value,
        };
        let size = self.nodes - collection.nodes_at_start + 1;
        let height = collection.child_height + 1;
        self.complete(node, collection.anchor, size, height)
    }

    fn expand_alias(&mut self, id: usize, position: Position) -> Result<(), SyntaxError> {
        let Some(anchored) = self.anchors.get(&id) else {
            return Err(SyntaxError {
                position,
                message: "alias refers to an unknown anchor".to_string(),
            });
        };
        let (node, size, height) = (anchored.node.clone(), anchored.size, anchored.height);
        self.count_nodes(size, position)?;
        self.complete(node, 0, size, height)
    }

    /// Attaches a finished node to its parent (or makes it the root).
    fn complete(
        &mut self,
        node: Node,
        anchor: usize,
        size: usize,
        height: usize,
    ) -> Result<(), SyntaxError> {
        if self.open.len() + height > MAX_DEPTH {
            return Err(too_deep(node.position));
        }
        if anchor != 0 {
            let anchored = Anchored {
                node: node.clone(),
                size,
                height,
            };
            self.anchors.insert(anchor, anchored);
        }
        let Some(parent) = self.open.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        parent.child_height = parent.child_height.max(height);
        match &mut parent.kind {
            OpenKind::Sequence(items) => items.push(node),
            OpenKind::Mapping {
                entries,
                pending_key,
            } => match pending_key.take() {
                Some(key) => entries.push((key, node)),
                None => *pending_key = Some(node),
            },
        }
        Ok(())
    }

    fn count_nodes(&mut self, added: usize, position: Position) -> Result<(), SyntaxError> {
        self.nodes = self.nodes.saturating_add(added);
        if self.nodes > MAX_NODES {
            return Err(SyntaxError {
                position,
                message: format!("document expands to more than {MAX_NODES} nodes"),
            });
        }
        Ok(())
    }
}

fn too_deep(position: Position) -> SyntaxError {
    SyntaxError {
        position,
        message: format!("nesting deeper than {MAX_DEPTH} levels"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(text: &str) -> Node {
        let mut documents = parse_documents(text);
        assert_eq!(documents.len(), 1, "{documents:?}");
        documents.remove(0).expect("document parses")
    }

    #[test]
    fn positions_are_one_based() {
        let root = single("# comment\na: 1\nb:\n  - x: y\n");
        assert_eq!(root.position, Position { line: 2, column: 1 });
        let item = match &root.get("b").unwrap().value {
            Value::Sequence(items) => &items[0],
            other => panic!("not a sequence: {other:?}"),
        };
        assert_eq!(item.position, Position { line: 4, column: 5 });
    }

    #[test]
    fn empty_documents_are_skipped() {
        let documents = parse_documents("---\n# only a comment\n---\na: 1\n---\n");
        assert_eq!(documents.len(), 1);
    }

    #[test]
    fn broken_document_does_not_hide_the_next() {
        let documents = parse_documents("a: [1, 2\n---\nb: 2\n");
        assert_eq!(documents.len(), 2);
        let error = documents[0].as_ref().unwrap_err();
        assert!(error.position.line >= 1, "{error:?}");
        assert_eq!(
            documents[1].as_ref().unwrap().get("b").unwrap().as_scalar(),
            Some("2")
        );
    }

    #[test]
    fn quoted_and_tagged_scalars_are_not_plain() {
        let root = single("a: '1'\nb: !!str 2\nc: 3\n");
        let plain = |key| match &root.get(key).unwrap().value {
            Value::Scalar(s) => s.plain,
            _ => panic!(),
        };
        assert!(!plain("a"));
        assert!(!plain("b"));
        assert!(plain("c"));
    }

    #[test]
    fn aliases_expand_to_copies() {
        let root = single("a: &x {k: v}\nb: *x\n");
        assert_eq!(
            root.get("b").unwrap().get("k").unwrap().as_scalar(),
            Some("v")
        );
    }

    #[test]
    fn alias_bomb_is_rejected() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..8 {
            let previous = level - 1;
            let refs = vec![format!("*a{previous}"); 10].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
        }
        let documents = parse_documents(&text);
        let error = documents[0].as_ref().unwrap_err();
        assert!(error.message.contains("more than"), "{error:?}");
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let text = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let documents = parse_documents(&text);
        assert!(documents[0].is_err());
    }
}
