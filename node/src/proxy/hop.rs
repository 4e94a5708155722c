//! Headers that belong to one connection, not to the message: RFC 9110 §7.6.1 lets a sender nominate any
//! header as hop-by-hop by naming it in `Connection`, and a proxy must remove the nominated ones (and
//! `Connection` itself) before forwarding, in both directions. The fixed hop-by-hop names are stripped where
//! headers are copied (`forward.rs`); this removes the ones a client or an upstream named.

use http::header::{HeaderMap, HeaderName, CONNECTION};
use smallvec::SmallVec;

/// Removes every header named in `headers`' `Connection` values (the `Connection` header itself stays for
/// the caller's fixed list). Costs one lookup when there is no `Connection` header, and no removal when it
/// names only `keep-alive` or `close`, as nearly all do.
pub fn remove_connection_nominated(headers: &mut HeaderMap) {
    let mut nominated: SmallVec<[HeaderName; 4]> = SmallVec::new();
    for value in headers.get_all(CONNECTION) {
        // A value that is not visible ASCII names no header we could match.
        let Ok(value) = value.to_str() else { continue };
        for token in value.split(',').map(str::trim) {
            if token.is_empty()
                || token.eq_ignore_ascii_case("close")
                || token.eq_ignore_ascii_case("keep-alive")
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                // `Connection: connection` must not remove the list we are reading from under us.
                if name != CONNECTION {
                    nominated.push(name);
                }
            }
        }
    }
    for name in nominated {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn nominated_headers_are_removed_and_the_rest_kept() {
        // (name, headers before, names left after)
        let cases: [(&str, HeaderMap, &[&str]); 5] = [
            (
                "one nominated",
                map(&[
                    ("connection", "x-secret"),
                    ("x-secret", "1"),
                    ("x-keep", "2"),
                ]),
                &["connection", "x-keep"],
            ),
            (
                "several, any case, repeated Connection headers",
                map(&[
                    ("connection", "keep-alive, X-A ,x-b"),
                    ("connection", "X-C"),
                    ("x-a", "1"),
                    ("x-b", "2"),
                    ("x-c", "3"),
                    ("x-d", "4"),
                ]),
                &["connection", "x-d"],
            ),
            (
                "keep-alive and close only",
                map(&[("connection", "keep-alive"), ("x-a", "1")]),
                &["connection", "x-a"],
            ),
            ("no Connection header", map(&[("x-a", "1")]), &["x-a"]),
            (
                "garbage tokens are ignored",
                map(&[("connection", "a b, , \"q\", connection"), ("x-a", "1")]),
                &["connection", "x-a"],
            ),
        ];
        for (name, mut headers, left) in cases {
            remove_connection_nominated(&mut headers);
            let mut got: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
            got.sort_unstable();
            assert_eq!(got, left, "{name}");
        }
    }
}
