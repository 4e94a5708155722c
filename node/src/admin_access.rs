//! Who may use the admin listener: the bearer token, the `Host` check and the browser-form refusal, as one
//! pure decision over a request's method, path and headers (so every rule is table-tested without sockets).
//!
//! Why each rule exists:
//! - **Host** (DNS rebinding): a web page can make a browser send requests to `127.0.0.1:9901` under the
//!   page's own name once that name re-resolves to loopback. Such requests carry the attacker's name in
//!   `Host`, so only IP literals of the listener, `localhost` and the names given with `--admin-hosts` are
//!   answered.
//! - **Form posts** (CSRF): a browser may send a cross-origin `POST` without a preflight when its content
//!   type is a form type or `text/plain`; `switchyard`'s own clients never send those, so they are refused,
//!   and so is a `POST` whose `Origin` is not the origin being asked.
//! - **Token**: with `--admin-token` every endpoint except `/healthz` and `/readyz` needs
//!   `Authorization: Bearer <token>`. Without a token, `POST` is refused on an admin listener that is not on
//!   loopback, since anyone who can reach it could otherwise reload the node.
//!
//! `/healthz` and `/readyz` are exempt from all three: load balancers and kubelets probe them (HAProxy's
//! `httpchk` sends no `Host`), and they reveal nothing but readiness.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use http::{header, HeaderMap, Method, StatusCode};

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for sending it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Why the admin token could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token file could not be read.
    #[error("cannot read the admin token file {}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The token is empty or not usable in an `Authorization` header.
    #[error(
        "the admin token from {from} is empty or has characters that cannot be sent in a header"
    )]
    Invalid {
        /// `--admin-token` or the file.
        from: String,
    },
}

/// The token from `--admin-token` or `--admin-token-file` (the file wins; surrounding whitespace and a
/// trailing newline are trimmed).
pub fn read_token(
    value: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<Option<Secret>, TokenError> {
    let (raw, from) = match (file, value) {
        (Some(path), _) => (
            std::fs::read_to_string(path).map_err(|source| TokenError::Read {
                path: path.to_path_buf(),
                source,
            })?,
            path.display().to_string(),
        ),
        (None, Some(v)) => (v.to_string(), "--admin-token".to_string()),
        (None, None) => return Ok(None),
    };
    let token = raw.trim();
    // Visible ASCII only: it must fit a header value and compare byte for byte.
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenError::Invalid { from });
    }
    Ok(Some(Secret::new(token)))
}

/// What the admin listener accepts. Built once at start.
#[derive(Debug, Clone)]
pub struct AdminAccess {
    listener: SocketAddr,
    token: Option<Secret>,
    /// Extra `Host` names (`--admin-hosts`), lower-case.
    hosts: Vec<String>,
}

/// Why a request was refused: the status and a message for the body (never containing the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: StatusCode,
    /// What to tell the client.
    pub message: &'static str,
}

impl AdminAccess {
    /// Rules for an admin listener bound to `listener`.
    pub fn new(listener: SocketAddr, token: Option<Secret>, hosts: &[String]) -> Self {
        AdminAccess {
            listener,
            token,
            hosts: hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        }
    }

    /// Whether `POST` is refused for want of a token (a non-loopback listener without one): `run` warns
    /// about it at start.
    pub fn posts_need_token(&self) -> bool {
        self.token.is_none() && !self.listener.ip().is_loopback()
    }

    /// Decides whether a request may be served. `host` is the request's authority: the `Host` header, or
    /// the URI's authority on HTTP/2.
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        host: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<(), Refusal> {
        if matches!(path, "/healthz" | "/readyz") {
            return Ok(());
        }
        let host = host.ok_or(Refusal {
            status: StatusCode::BAD_REQUEST,
            message: "missing Host",
        })?;
        if !self.host_allowed(host) {
            return Err(Refusal {
                status: StatusCode::MISDIRECTED_REQUEST,
                message: "Host is not a name of this admin listener (add it with --admin-hosts)",
            });
        }
        if let Some(token) = &self.token {
            if !bearer_matches(headers, token) {
                return Err(Refusal {
                    status: StatusCode::UNAUTHORIZED,
                    message: "missing or wrong admin token (Authorization: Bearer …)",
                });
            }
        }
        if *method == Method::POST {
            if self.posts_need_token() {
                return Err(Refusal {
                    status: StatusCode::FORBIDDEN,
                    message:
                        "POST on an admin listener that is not on loopback needs --admin-token",
                });
            }
            if is_form_content_type(headers) {
                return Err(Refusal {
                    status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    message: "form and text/plain bodies are refused (browser form posts)",
                });
            }
            if let Some(origin) = headers.get(header::ORIGIN) {
                if !same_origin(origin.as_bytes(), host) {
                    return Err(Refusal {
                        status: StatusCode::FORBIDDEN,
                        message: "cross-origin POST refused",
                    });
                }
            }
        }
        Ok(())
    }

    fn host_allowed(&self, authority: &str) -> bool {
        let name = host_part(authority).to_ascii_lowercase();
        if name == "localhost" || self.hosts.contains(&name) {
            return true;
        }
        match name.parse::<IpAddr>() {
            // A wildcard listener answers on every local address; a rebinding attack needs a name, so any
            // IP literal is safe there.
            Ok(ip) => self.listener.ip().is_unspecified() || ip == self.listener.ip(),
            Err(_) => false,
        }
    }
}

/// The host of an authority: without the port, and without the brackets of an IPv6 literal.
fn host_part(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

fn bearer_matches(headers: &HeaderMap, token: &Secret) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return false;
    };
    let value = value.as_bytes();
    let Some(scheme) = value.get(..7) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return false;
    }
    constant_time_eq(value[7..].trim_ascii(), token.expose().as_bytes())
}

/// Compares without returning early on the first differing byte, so response timing does not reveal how
/// much of a guessed token was right (the length is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The content types a browser sends cross-origin without a CORS preflight (Fetch standard's "CORS-safelisted
/// request-header" for `Content-Type`).
fn is_form_content_type(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONTENT_TYPE).iter().any(|v| {
        let media = v
            .as_bytes()
            .split(|b| *b == b';')
            .next()
            .unwrap_or_default();
        let media = media.trim_ascii();
        [
            &b"application/x-www-form-urlencoded"[..],
            b"multipart/form-data",
            b"text/plain",
        ]
        .iter()
        .any(|t| media.eq_ignore_ascii_case(t))
    })
}

/// Whether `Origin` names the origin the request was sent to (`http://` + its `Host`). `null` and anything
/// unparsable are foreign.
fn same_origin(origin: &[u8], host: &str) -> bool {
    let Ok(origin) = std::str::from_utf8(origin) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    /// (name, rules, method, path, host, headers, expected status or None = served)
    type Row<'a> = (
        &'a str,
        &'a AdminAccess,
        &'a Method,
        &'a str,
        Option<&'a str>,
        Vec<(&'a str, &'a str)>,
        Option<u16>,
    );

    #[test]
    fn admin_requests_are_checked() {
        let lo: SocketAddr = "127.0.0.1:9901".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:9901".parse().unwrap();
        let pod: SocketAddr = "10.0.0.5:9901".parse().unwrap();
        let tok = Some(Secret::new("s3cret"));
        let open = AdminAccess::new(lo, None, &["admin.example".into()]);
        let locked = AdminAccess::new(lo, tok.clone(), &[]);
        let wild = AdminAccess::new(any, None, &[]);
        let wild_tok = AdminAccess::new(any, tok, &[]);
        let pod_open = AdminAccess::new(pod, None, &[]);
        let get = Method::GET;
        let post = Method::POST;
        let bearer = ("authorization", "Bearer s3cret");
        // (name, rules, method, path, host, headers, expected status or None = served)
        let rows: Vec<Row> = vec![
            (
                "status on the listener's IP",
                &open,
                &get,
                "/status",
                Some("127.0.0.1:9901"),
                vec![],
                None,
            ),
            (
                "status via localhost",
                &open,
                &get,
                "/status",
                Some("localhost:9901"),
                vec![],
                None,
            ),
            (
                "configured name, any case",
                &open,
                &get,
                "/metrics",
                Some("Admin.Example"),
                vec![],
                None,
            ),
            (
                "rebinding name refused",
                &open,
                &get,
                "/status",
                Some("evil.example:9901"),
                vec![],
                Some(421),
            ),
            (
                "another IP than the listener's",
                &open,
                &get,
                "/status",
                Some("10.1.1.1:9901"),
                vec![],
                Some(421),
            ),
            (
                "wildcard listener: any IP literal",
                &wild_tok,
                &get,
                "/status",
                Some("10.1.1.1:9901"),
                vec![bearer],
                None,
            ),
            (
                "wildcard listener: IPv6 literal",
                &wild_tok,
                &get,
                "/status",
                Some("[::1]:9901"),
                vec![bearer],
                None,
            ),
            (
                "missing Host",
                &open,
                &get,
                "/status",
                None,
                vec![],
                Some(400),
            ),
            (
                "probes need nothing",
                &locked,
                &get,
                "/readyz",
                None,
                vec![],
                None,
            ),
            (
                "liveness needs nothing",
                &wild,
                &get,
                "/healthz",
                Some("evil.example"),
                vec![],
                None,
            ),
            (
                "token missing",
                &locked,
                &get,
                "/status",
                Some("127.0.0.1"),
                vec![],
                Some(401),
            ),
            (
                "token wrong",
                &locked,
                &get,
                "/status",
                Some("127.0.0.1"),
                vec![("authorization", "Bearer s3creX")],
                Some(401),
            ),
            (
                "token prefix only",
                &locked,
                &get,
                "/status",
                Some("127.0.0.1"),
                vec![("authorization", "Bearer s3c")],
                Some(401),
            ),
            (
                "token as basic",
                &locked,
                &get,
                "/status",
                Some("127.0.0.1"),
                vec![("authorization", "Basic s3cret")],
                Some(401),
            ),
            (
                "token right",
                &locked,
                &get,
                "/status",
                Some("127.0.0.1"),
                vec![("authorization", "bearer s3cret")],
                None,
            ),
            (
                "reload on loopback without token",
                &open,
                &post,
                "/reload",
                Some("127.0.0.1:9901"),
                vec![],
                None,
            ),
            (
                "reload with JSON",
                &open,
                &post,
                "/reload",
                Some("127.0.0.1:9901"),
                vec![("content-type", "application/json")],
                None,
            ),
            (
                "form post refused",
                &open,
                &post,
                "/reload",
                Some("127.0.0.1:9901"),
                vec![("content-type", "application/x-www-form-urlencoded")],
                Some(415),
            ),
            (
                "multipart refused",
                &open,
                &post,
                "/reload",
                Some("127.0.0.1:9901"),
                vec![("content-type", "multipart/form-data; boundary=x")],
                Some(415),
            ),
            (
                "text/plain refused",
                &open,
                &post,
                "/reload",
                Some("127.0.0.1:9901"),
                vec![("content-type", "Text/Plain;charset=UTF-8")],
                Some(415),
            ),
            (
                "foreign Origin refused",
                &open,
                &post,
                "/reload",
                Some("127.0.0.1:9901"),
                vec![("origin", "https://evil.example")],
                Some(403),
            ),
            (
                "another port's Origin refused",
                &open,
                &post,
                "/reload",
                Some("127.0.0.1:9901"),
                vec![("origin", "http://127.0.0.1:3000")],
                Some(403),
            ),
            (
                "null Origin refused",
                &open,
                &post,
                "/reload",
                Some("127.0.0.1:9901"),
                vec![("origin", "null")],
                Some(403),
            ),
            (
                "same Origin served",
                &open,
                &post,
                "/reload",
                Some("127.0.0.1:9901"),
                vec![("origin", "http://127.0.0.1:9901")],
                None,
            ),
            (
                "non-loopback POST without token",
                &pod_open,
                &post,
                "/reload",
                Some("10.0.0.5:9901"),
                vec![],
                Some(403),
            ),
            (
                "non-loopback GET without token",
                &pod_open,
                &get,
                "/status",
                Some("10.0.0.5:9901"),
                vec![],
                None,
            ),
            (
                "wildcard POST with token",
                &wild_tok,
                &post,
                "/reload",
                Some("10.0.0.5:9901"),
                vec![bearer],
                None,
            ),
            (
                "wildcard POST without token",
                &wild,
                &post,
                "/reload",
                Some("10.0.0.5:9901"),
                vec![],
                Some(403),
            ),
        ];
        for (name, rules, method, path, host, hdrs, want) in rows {
            let got = rules.check(method, path, host, &headers(&hdrs));
            assert_eq!(got.err().map(|r| r.status.as_u16()), want, "{name}");
        }
    }

    #[test]
    fn tokens_are_read_trimmed_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let t = read_token(Some("from-flag"), Some(&file)).unwrap().unwrap();
        assert_eq!(t.expose(), "from-file");
        assert_eq!(format!("{t:?}"), "Secret(***)");
        let t = read_token(Some("from-flag"), None).unwrap().unwrap();
        assert_eq!(t.expose(), "from-flag");
        assert!(read_token(None, None).unwrap().is_none());
        assert!(read_token(Some("  "), None).is_err());
        assert!(read_token(Some("a\u{7f}b"), None).is_err());
        let missing = read_token(None, Some(&dir.path().join("nope")))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("nope"), "{missing}");
    }

    #[test]
    fn hosts_lose_their_port_and_brackets() {
        assert_eq!(host_part("a.example:9901"), "a.example");
        assert_eq!(host_part("a.example"), "a.example");
        assert_eq!(host_part("[::1]:9901"), "::1");
        assert_eq!(host_part("[::1]"), "::1");
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
