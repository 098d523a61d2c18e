//! Istio's `pathNormalization` as Envoy connection manager settings, on
//! the connection managers that authorize requests (inbound and gateway).

use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::PathWithEscapedSlashesAction,
};
use envoy_types::pb::google::protobuf::BoolValue;
use trellis_api::PathNormalizationMode as Mode;

/// Sets `hcm`'s path transformations for `mode`.
pub(crate) fn configure(hcm: &mut HttpConnectionManager, mode: Mode) {
    let (rfc3986, merge_slashes, decode_slashes) = match mode {
        Mode::None => (false, false, false),
        Mode::Default | Mode::Base => (true, false, false),
        Mode::MergeSlashes => (true, true, false),
        Mode::DecodeAndMergeSlashes => (true, true, true),
    };
    hcm.normalize_path = Some(BoolValue { value: rfc3986 });
    hcm.merge_slashes = merge_slashes;
    hcm.path_with_escaped_slashes_action = if decode_slashes {
        PathWithEscapedSlashesAction::UnescapeAndForward
    } else {
        PathWithEscapedSlashesAction::KeepUnchanged
    } as i32;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(mode: Mode) -> (Option<bool>, bool, PathWithEscapedSlashesAction) {
        let mut hcm = HttpConnectionManager::default();
        configure(&mut hcm, mode);
        (
            hcm.normalize_path.map(|b| b.value),
            hcm.merge_slashes,
            hcm.path_with_escaped_slashes_action(),
        )
    }

    #[test]
    fn each_mode_adds_to_the_one_before() {
        use PathWithEscapedSlashesAction::{KeepUnchanged, UnescapeAndForward};
        assert_eq!(configured(Mode::None), (Some(false), false, KeepUnchanged));
        assert_eq!(configured(Mode::Default), configured(Mode::Base));
        assert_eq!(configured(Mode::Base), (Some(true), false, KeepUnchanged));
        assert_eq!(
            configured(Mode::MergeSlashes),
            (Some(true), true, KeepUnchanged)
        );
        assert_eq!(
            configured(Mode::DecodeAndMergeSlashes),
            (Some(true), true, UnescapeAndForward)
        );
    }
}
