//! Config the proxy does not implement is rejected (NACKed) by name, never
//! silently ignored.

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unsupported: {0}")]
pub struct Unsupported(pub &'static str);

pub fn reject_if(set: bool, field: &'static str) -> Result<(), Unsupported> {
    if set { Err(Unsupported(field)) } else { Ok(()) }
}
