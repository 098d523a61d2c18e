//! `/logging`: GET lists each component's level; POST changes them with
//! `?level=LEVEL` (every component), `?paths=NAME:LEVEL,...` or
//! `?NAME=LEVEL`, as Envoy's admin does.

use axum::extract::Query;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::log_levels::{self, LogLevels, LoggingError};

pub async fn logging(method: Method, Query(pairs): Query<Vec<(String, String)>>) -> Response {
    let Some(levels) = log_levels::installed() else {
        return failure(LoggingError::NotInstalled);
    };
    if pairs.is_empty() {
        return levels.render().into_response();
    }
    if method != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "changing log levels requires POST\n",
        )
            .into_response();
    }
    match change(levels, &pairs) {
        Ok(()) => levels.render().into_response(),
        Err(error) => failure(error),
    }
}

fn change(levels: &LogLevels, pairs: &[(String, String)]) -> Result<(), LoggingError> {
    if let [(key, level)] = pairs
        && key == "level"
    {
        return levels.set_all(level);
    }
    let mut wanted = Vec::new();
    for (key, value) in pairs {
        match key.as_str() {
            "paths" => wanted.extend(log_levels::parse_paths(value)?),
            "level" => return Err(LoggingError::UnknownLogger("level".into())),
            _ => wanted.push((key.clone(), value.clone())),
        }
    }
    levels.set_some(&wanted)
}

fn failure(error: LoggingError) -> Response {
    let status = match error {
        LoggingError::UnknownLogger(_) => StatusCode::NOT_FOUND,
        LoggingError::UnknownLevel(_) => StatusCode::BAD_REQUEST,
        LoggingError::NotInstalled | LoggingError::Apply(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, format!("error: {error}\n")).into_response()
}
