//! Equality-based label selectors (`app=reviews,version!=v1,canary`,
//! `!legacy`), as `labelSelector` on list and watch. Set-based
//! requirements (`in`, `notin`) are refused with 400, not ignored.

use serde_json::Value;

use super::store::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    DoesNotExist(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    pub fn parse(text: &str) -> Result<LabelSelector, ApiError> {
        let requirements = text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(parse_requirement)
            .collect::<Result<_, _>>()?;
        Ok(LabelSelector { requirements })
    }

    /// Whether the object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let label = |key: &str| labels.get(key).and_then(Value::as_str);
        self.requirements
            .iter()
            .all(|requirement| match requirement {
                Requirement::Equals(key, value) => label(key) == Some(value),
                Requirement::NotEquals(key, value) => label(key) != Some(value),
                Requirement::Exists(key) => label(key).is_some(),
                Requirement::DoesNotExist(key) => label(key).is_none(),
            })
    }
}

fn parse_requirement(part: &str) -> Result<Requirement, ApiError> {
    let invalid = || ApiError::bad_request(format!("unable to parse requirement: {part:?}"));
    let valid = |text: &str| {
        !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    };
    let requirement = if let Some((key, value)) = part.split_once("!=") {
        Requirement::NotEquals(key.trim().into(), value.trim().into())
    } else if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
        Requirement::Equals(key.trim().into(), value.trim().into())
    } else if let Some(key) = part.strip_prefix('!') {
        Requirement::DoesNotExist(key.trim().into())
    } else {
        Requirement::Exists(part.into())
    };
    let (key, value) = match &requirement {
        Requirement::Equals(key, value) | Requirement::NotEquals(key, value) => (key, Some(value)),
        Requirement::Exists(key) | Requirement::DoesNotExist(key) => (key, None),
    };
    let value_ok = value.is_none_or(|value| value.is_empty() || valid(value));
    if !valid(key) || !value_ok {
        return Err(invalid());
    }
    Ok(requirement)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labelled(labels: Value) -> Value {
        json!({"metadata": {"name": "x", "labels": labels}})
    }

    #[test]
    fn equality_inequality_and_existence() {
        let selector = LabelSelector::parse("app=reviews, version!=v1,canary,!legacy").unwrap();
        let matching = labelled(json!({"app": "reviews", "version": "v2", "canary": ""}));
        assert!(selector.matches(&matching));
        let v1 = labelled(json!({"app": "reviews", "version": "v1", "canary": ""}));
        assert!(!selector.matches(&v1));
        let legacy = labelled(json!({"app": "reviews", "canary": "", "legacy": "y"}));
        assert!(!selector.matches(&legacy));
        assert!(!selector.matches(&json!({"metadata": {"name": "x"}})));
        assert!(LabelSelector::parse("").unwrap().matches(&json!({})));
    }

    #[test]
    fn set_based_requirements_are_refused() {
        let error = LabelSelector::parse("app in (a,b)").unwrap_err();
        assert_eq!(error.code, 400);
    }
}
