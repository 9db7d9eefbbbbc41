//! The path a request is routed on, computed the way the gateway computes
//! it, so that no spelling of a route clawbridge owns can reach the
//! gateway's own handler. The gateway routes on
//! `new URL(target, "http://localhost").pathname` (WHATWG URL: dot segments
//! resolved, `%2e` included; `\` read as `/`; query and fragment dropped;
//! absolute-form targets reduced to their path; nothing else decoded, no
//! case folding, no slash collapsing), then strips a
//! `/__openclaw__/cap/<capability>` prefix. The `url` crate implements the
//! same WHATWG parser.

use std::borrow::Cow;
use std::sync::LazyLock;

use url::Url;

static BASE: LazyLock<Url> = LazyLock::new(|| Url::parse("http://localhost/").expect("static base URL"));

/// Node-capability scoped paths: `/__openclaw__/cap/<cap>/<route>` reaches `<route>`.
const CAPABILITY_PREFIX: &str = "/__openclaw__/cap/";

/// The routing path of a raw request target (the bytes sent upstream).
/// `None` when it cannot be computed: not UTF-8 (Node refuses raw non-ASCII
/// bytes with 400) or not a parsable URL (the gateway answers 401 before
/// routing). The caller refuses such a target rather than forwarding what
/// it cannot judge.
pub fn routing_path(target: &[u8]) -> Option<Cow<'_, str>> {
    let target = std::str::from_utf8(target).ok()?;
    let path = match plain_path(target) {
        Some(path) => Cow::Borrowed(path),
        None => Cow::Owned(parse(target)?.path().to_owned()),
    };
    Some(strip_capability(path))
}

/// `new URL(target, "http://localhost")`. A scheme-relative target (two or
/// more leading `/` or `\`) is parsed as `http:` + target, which WHATWG
/// defines identically: the `url` crate refuses `///host/path` relative to
/// a base (empty host) where Node skips the extra slashes.
fn parse(target: &str) -> Option<Url> {
    let mut slashes = target.bytes().take_while(|b| *b == b'/' || *b == b'\\');
    if slashes.nth(1).is_some() {
        return Url::parse(&format!("http:{target}")).ok();
    }
    Url::options().base_url(Some(&BASE)).parse(target).ok()
}

/// The path of an origin-form target that WHATWG parsing leaves as it is:
/// starts with one `/`, and before any `?`/`#` holds only characters that
/// are neither encoded, decoded, dropped nor dot-segment material. The
/// common case, answered without building a URL.
fn plain_path(target: &str) -> Option<&str> {
    let bytes = target.as_bytes();
    if bytes.first() != Some(&b'/') || bytes.get(1) == Some(&b'/') {
        return None;
    }
    let end = bytes.iter().position(|&b| b == b'?' || b == b'#').unwrap_or(bytes.len());
    let plain = bytes[..end].iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(b, b'/' | b'-' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')')
            || matches!(b, b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@')
    });
    // A query can hold tabs or newlines that WHATWG strips from the whole
    // input; they never move the path, but keep the fast path to clean input.
    let clean = bytes[end..].iter().all(|&b| b > b' ' && b != 0x7f);
    (plain && clean).then(|| &target[..end])
}

/// `/__openclaw__/cap/<cap>/<rest>` → `/<rest>`. A scoped path whose
/// capability is malformed is refused by the gateway (401); it is stripped
/// here all the same, so such a request is still judged by its route.
fn strip_capability(path: Cow<'_, str>) -> Cow<'_, str> {
    let Some(rest) = path.strip_prefix(CAPABILITY_PREFIX) else { return path };
    match rest.find('/') {
        Some(slash) if slash > 0 => match path {
            Cow::Borrowed(p) => Cow::Borrowed(&p[CAPABILITY_PREFIX.len() + slash..]),
            Cow::Owned(p) => Cow::Owned(p[CAPABILITY_PREFIX.len() + slash..].to_owned()),
        },
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Raw targets and the path the gateway (2026.9.6) routes them on, as
    /// recorded by running its own `new URL(...)` and capability code on
    /// Node 24 (`None`: Node or the gateway refuses the target before any
    /// route sees it).
    const GATEWAY_ROUTING: &[(&str, Option<&str>)] = &[
        ("/v1/chat/completions", Some("/v1/chat/completions")),
        ("/v1/chat/completions/", Some("/v1/chat/completions/")),
        ("/v1/chat/completions?x", Some("/v1/chat/completions")),
        ("/v1/chat/completions?", Some("/v1/chat/completions")),
        ("/v1/chat/completions?/../x", Some("/v1/chat/completions")),
        ("/V1/chat/completions", Some("/V1/chat/completions")),
        ("/v1/./chat/completions", Some("/v1/chat/completions")),
        ("/v1/x/../chat/completions", Some("/v1/chat/completions")),
        ("/v1/%2e/chat/completions", Some("/v1/chat/completions")),
        ("/v1/%2E/chat/completions", Some("/v1/chat/completions")),
        ("/v1/x/%2E%2E/chat/completions", Some("/v1/chat/completions")),
        ("/v1/x/.%2e/chat/completions", Some("/v1/chat/completions")),
        ("/v1/x/%2e./chat/completions", Some("/v1/chat/completions")),
        ("/v1\\chat\\completions", Some("/v1/chat/completions")),
        ("/v1/chat%2fcompletions", Some("/v1/chat%2fcompletions")),
        ("/v1/chat%2Fcompletions", Some("/v1/chat%2Fcompletions")),
        ("//v1/chat/completions", Some("/chat/completions")),
        ("///v1/chat/completions", Some("/chat/completions")),
        ("/\\v1/chat/completions", Some("/chat/completions")),
        ("//x/v1/chat/completions", Some("/v1/chat/completions")),
        ("///x/v1/chat/completions", Some("/v1/chat/completions")),
        ("/\\\\x/v1/chat/completions", Some("/v1/chat/completions")),
        ("\\\\\\x/v1/chat/completions", Some("/v1/chat/completions")),
        ("//[::1]/v1/chat/completions", Some("/v1/chat/completions")),
        ("//x:99999/v1/chat/completions", None),
        ("//%zz/v1/chat/completions", None),
        ("http:////x/v1/chat/completions", Some("/v1/chat/completions")),
        ("/v1//chat/completions", Some("/v1//chat/completions")),
        ("/v1/chat//completions", Some("/v1/chat//completions")),
        ("/v1/chat/completions#frag", Some("/v1/chat/completions")),
        ("/v1/chat/completions;x", Some("/v1/chat/completions;x")),
        ("/%761/chat/completions", Some("/%761/chat/completions")),
        ("http://localhost/v1/chat/completions", Some("/v1/chat/completions")),
        ("http://evil.example:9/v1/chat/completions", Some("/v1/chat/completions")),
        ("HTTP://X/v1/chat/completions", Some("/v1/chat/completions")),
        ("https://x/v1/chat/completions", Some("/v1/chat/completions")),
        ("ws://x/v1/chat/completions", Some("/v1/chat/completions")),
        ("foo://x/v1/chat/completions", Some("/v1/chat/completions")),
        ("HTTP://user:pw@x/v1/chat/completions", Some("/v1/chat/completions")),
        ("http:///v1/chat/completions", Some("/chat/completions")),
        ("http://x", Some("/")),
        ("http://%zz/v1/chat/completions", None),
        ("http://x:99999/v1/chat/completions", None),
        ("http://[::1/v1/chat/completions", None),
        ("/v1/chat/completions%00", Some("/v1/chat/completions%00")),
        ("/v1/chat/completions%20", Some("/v1/chat/completions%20")),
        ("/v1/chat/completions%3f", Some("/v1/chat/completions%3f")),
        ("/v1/chat/completions\\", Some("/v1/chat/completions/")),
        ("/v1/chat/completions/.", Some("/v1/chat/completions/")),
        ("/v1/chat/completions/..", Some("/v1/chat/")),
        ("/v1/chat/completions%", Some("/v1/chat/completions%")),
        ("/../v1/chat/completions", Some("/v1/chat/completions")),
        ("/%2e%2e/v1/chat/completions", Some("/v1/chat/completions")),
        ("/./v1/chat/completions", Some("/v1/chat/completions")),
        ("/v1/chat/compl%C3%A9tions", Some("/v1/chat/compl%C3%A9tions")),
        ("*", Some("/*")),
        ("/__openclaw__/cap/abc/v1/chat/completions", Some("/v1/chat/completions")),
        ("/__openclaw__/cap/a%2Fb/v1/chat/completions", Some("/v1/chat/completions")),
        ("/__openclaw__/cap/x/v1/x/../chat/completions", Some("/v1/chat/completions")),
        ("/__openclaw__/%63ap/x/v1/chat/completions", Some("/__openclaw__/%63ap/x/v1/chat/completions")),
        ("/__OPENCLAW__/cap/abc/v1/chat/completions", Some("/__OPENCLAW__/cap/abc/v1/chat/completions")),
        ("/v1/models", Some("/v1/models")),
        ("/v1/models/x/../../models", Some("/v1/models")),
        ("/v1/models/%2e%2e", Some("/v1/")),
        ("/v1/Responses", Some("/v1/Responses")),
    ];

    #[test]
    fn routes_every_spelling_as_the_gateway_does() {
        for (target, expected) in GATEWAY_ROUTING {
            let got = routing_path(target.as_bytes());
            assert_eq!(got.as_deref(), *expected, "target {target:?}");
        }
        assert_eq!(routing_path(b"/v1/chat/completions\xff"), None, "not UTF-8: Node refuses it");
    }

    /// The fast path answers exactly what the URL parser answers.
    #[test]
    fn plain_paths_agree_with_the_url_parser() {
        let alphabet =
            ["/", "v1", "chat", "completions", ".", "..", "%2e", "%2f", "\\", "?", "#", "a;b", "~", "@", ":"];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut target = String::from("/");
            for _ in 0..(seed % 7) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                target.push_str(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            if let Some(fast) = plain_path(&target) {
                let slow = parse(&target).unwrap();
                assert_eq!(fast, slow.path(), "target {target:?}");
            }
        }
    }
}
