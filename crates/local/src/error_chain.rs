//! Error messages with their causes: hyper's errors hide the useful part
//! (e.g. "Connection refused") in `source()`.

/// `error: cause: cause's cause...`
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
