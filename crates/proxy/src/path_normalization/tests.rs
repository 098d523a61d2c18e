use super::*;

/// Istio's `pathNormalization.normalization` modes, as the translator
/// configures them.
const NONE: PathNormalization = PathNormalization {
    rfc3986: false,
    merge_slashes: false,
    escaped_slashes: EscapedSlashes::Keep,
};
const BASE: PathNormalization = PathNormalization {
    rfc3986: true,
    ..NONE
};
const MERGE_SLASHES: PathNormalization = PathNormalization {
    merge_slashes: true,
    ..BASE
};
const DECODE_AND_MERGE_SLASHES: PathNormalization = PathNormalization {
    escaped_slashes: EscapedSlashes::UnescapeAndForward,
    ..MERGE_SLASHES
};

fn uri(text: &str) -> Uri {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The path (and query) the request goes on with, or what it gets instead.
fn result(mode: PathNormalization, path: &str) -> String {
    match mode.apply(&uri(path)) {
        Outcome::Unchanged => uri(path).path_and_query().unwrap().to_string(),
        Outcome::Rewritten(rewritten) => rewritten.to_string(),
        Outcome::Redirect(location) => format!("redirect {location}"),
        Outcome::Refused => "400".into(),
    }
}

/// Whether a DENY policy on `paths: ["/admin*"]` stops the request: it is
/// refused, or the path it is matched (and forwarded) with starts `/admin`.
fn stopped(mode: PathNormalization, path: &str) -> bool {
    match mode.apply(&uri(path)) {
        Outcome::Refused => true,
        Outcome::Unchanged => uri(path).path().starts_with("/admin"),
        Outcome::Rewritten(rewritten) => rewritten.path().starts_with("/admin"),
        Outcome::Redirect(_) => false,
    }
}

#[test]
fn each_mode_stops_exactly_the_bypasses_istio_says_it_normalizes() {
    // variant, then stopped under NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES
    let table: [(&str, [bool; 4]); 17] = [
        ("/admin", [true; 4]),
        ("/admin/users", [true; 4]),
        ("/admin?x", [true; 4]),
        ("/admin#x", [true; 4]),
        ("/admin%00", [true; 4]),
        ("/./admin", [false, true, true, true]),
        ("/a/../admin", [false, true, true, true]),
        ("/.%2e/admin", [false, true, true, true]),
        ("/%61dmin", [false, true, true, true]),
        ("/%61%64%6D%69%6E", [false, true, true, true]),
        ("/x\\..\\admin", [false, true, true, true]),
        ("/\\admin", [false, false, true, true]),
        ("//admin", [false, false, true, true]),
        ("/%2Fadmin", [false, false, false, true]),
        ("/%2fadmin", [false, false, false, true]),
        ("/%5Cadmin", [false, false, false, true]),
        // Paths are case-sensitive in Istio: a different resource.
        ("/Admin", [false; 4]),
    ];
    let modes = [
        ("NONE", NONE),
        ("BASE", BASE),
        ("MERGE_SLASHES", MERGE_SLASHES),
        ("DECODE_AND_MERGE_SLASHES", DECODE_AND_MERGE_SLASHES),
    ];
    for (variant, expected) in table {
        for ((name, mode), stops) in modes.iter().zip(expected) {
            assert_eq!(
                stopped(*mode, variant),
                stops,
                "{variant} under {name} went on as {}",
                result(*mode, variant)
            );
        }
    }
}

#[test]
fn base_follows_rfc_3986_and_reads_backslashes_as_slashes() {
    assert_eq!(result(BASE, "/a/../b"), "/b");
    assert_eq!(result(BASE, "/\\da"), "//da");
    assert_eq!(
        result(BASE, "/public/./data/abc/../xyz"),
        "/public/data/xyz"
    );
    assert_eq!(result(BASE, "/some\\data"), "/some/data");
    assert_eq!(
        result(BASE, "/%2d%2E%30%39%41%5a%5f%61%7A%7e"),
        "/-.09AZ_az~"
    );
    assert_eq!(result(BASE, "/a/.."), "/");
    assert_eq!(result(BASE, "/a/."), "/a/");
    assert_eq!(result(BASE, "/../../a"), "/a");
    assert_eq!(result(BASE, "/a//b"), "/a//b");
    // Reserved and other characters stay escaped; nothing is decoded twice.
    assert_eq!(result(BASE, "/a%2Fb%3F%20"), "/a%2Fb%3F%20");
    assert_eq!(result(BASE, "/%252e%252e/admin"), "/%252e%252e/admin");
    // The query is not the path's business.
    assert_eq!(result(BASE, "/a/./b?x=/../y&%61"), "/a/b?x=/../y&%61");
    assert_eq!(result(BASE, "*"), "*");
    assert_eq!(NONE.apply(&uri("/a/../b")), Outcome::Unchanged);
    assert_eq!(BASE.apply(&uri("/productpage?u=1")), Outcome::Unchanged);
}

#[test]
fn merge_and_decode_follow_base() {
    assert_eq!(result(MERGE_SLASHES, "/a//b///c"), "/a/b/c");
    assert_eq!(result(MERGE_SLASHES, "/a%2fb"), "/a%2fb");
    assert_eq!(result(DECODE_AND_MERGE_SLASHES, "/a%2fb"), "/a/b");
    assert_eq!(
        result(DECODE_AND_MERGE_SLASHES, "/some%2fdata/%61%62%63"),
        "/some/data/abc"
    );
    assert_eq!(result(DECODE_AND_MERGE_SLASHES, "/a%5Cb"), "/a/b");
    assert_eq!(
        result(DECODE_AND_MERGE_SLASHES, "/a%2F..%2Fadmin"),
        "/admin"
    );
    assert_eq!(result(DECODE_AND_MERGE_SLASHES, "/a%252Fb"), "/a%252Fb");
}

#[test]
fn escaped_slashes_can_be_refused_or_redirected() {
    let reject = PathNormalization {
        escaped_slashes: EscapedSlashes::Reject,
        ..BASE
    };
    assert_eq!(result(reject, "/a%2Fb"), "400");
    assert_eq!(result(reject, "/a/b"), "/a/b");
    let redirect = PathNormalization {
        escaped_slashes: EscapedSlashes::UnescapeAndRedirect,
        ..MERGE_SLASHES
    };
    assert_eq!(result(redirect, "/a%2F%2Fb?q=1"), "redirect /a/b?q=1");
    assert_eq!(result(redirect, "/a//b"), "/a/b");
}

#[test]
fn an_encoded_nul_is_refused_in_every_mode() {
    for mode in [NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES] {
        assert_eq!(result(mode, "/a%00b"), "400");
    }
    assert_eq!(result(NONE, "/a%0"), "/a%0");
}
