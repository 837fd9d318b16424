//! What a partner is shown: a text or a JSON answer with the daemon host's
//! absolute paths replaced by `<host path>` (the API's answers to partner
//! tokens, and the notifications sent to a tenant's own channels).

/// Replaces every absolute host path in the strings of `v` with `<host path>`.
pub(crate) fn redact_paths(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s.contains('/') => *s = redact_text(s),
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact_paths),
        serde_json::Value::Object(o) => o.values_mut().for_each(redact_paths),
        _ => {}
    }
}

/// A text with its absolute paths (a `/` at the start or after a space, a
/// quote, `(`, `=` or `:` followed by a space) replaced. URLs keep their
/// scheme and host (`s3://bucket/...` is not a host path).
pub(crate) fn redact_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices().peekable();
    let mut prev: Option<char> = None;
    while let Some((i, c)) = chars.next() {
        let starts = c == '/'
            && prev.is_none_or(|p| p.is_whitespace() || "\"'(=[{,".contains(p))
            && !s[i..].starts_with("//");
        if starts {
            // Up to a space, a closing quote or bracket, or a `:` that ends
            // the path (followed by a space or the end).
            while let Some(&(j, c)) = chars.peek() {
                let colon_ends =
                    c == ':' && s[j + 1..].chars().next().is_none_or(char::is_whitespace);
                if c.is_whitespace() || "\"'),;]}".contains(c) || colon_ends {
                    break;
                }
                chars.next();
            }
            out.push_str("<host path>");
            prev = Some('>');
            continue;
        }
        out.push(c);
        prev = Some(c);
    }
    out
}
