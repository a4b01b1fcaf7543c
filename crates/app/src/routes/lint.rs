//! `weblab lint-routes` (C39): checks paths against the usual REST URI
//! rules: lowercase, hyphens rather than underscores, no trailing slash,
//! no file extension, plural nouns before an id, ids only after a
//! collection, and no verbs (the method is the verb).

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// `METHOD /path` as given.
    pub route: String,
    pub rule: &'static str,
    pub detail: String,
}

/// Words that say an action; in REST the method says it.
const VERBS: &[&str] = &[
    "get", "set", "put", "post", "create", "make", "add", "insert", "new", "delete", "remove",
    "destroy", "update", "edit", "modify", "change", "fetch", "list", "show", "find", "do", "run",
    "execute", "save", "refresh", "login", "logout", "signin", "signout", "signup", "register",
];

/// Plurals that do not end in "s".
const IRREGULAR_PLURALS: &[&str] = &[
    "people", "children", "men", "women", "data", "media", "feet", "mice",
];

fn is_param(seg: &str) -> bool {
    (seg.starts_with('{') && seg.ends_with('}')) || seg.starts_with(':') || seg.starts_with('<')
}

fn is_plural(word: &str) -> bool {
    let last = word.rsplit('-').next().unwrap_or(word);
    (last.ends_with('s') && !last.ends_with("ss")) || IRREGULAR_PLURALS.contains(&last)
}

/// The findings for one route (`method` may be empty).
pub fn check(method: &str, path: &str) -> Vec<Finding> {
    let route = if method.is_empty() {
        path.to_string()
    } else {
        format!("{method} {path}")
    };
    let mut out = Vec::new();
    let mut say = |rule: &'static str, detail: String| {
        out.push(Finding {
            route: route.clone(),
            rule,
            detail,
        })
    };
    if !path.starts_with('/') {
        say("absolute", "a path starts with /".into());
    }
    if path.len() > 1 && path.ends_with('/') {
        say(
            "no-trailing-slash",
            "drop the final /: it names the same resource twice".into(),
        );
    }
    if path.contains('?') {
        say(
            "no-query",
            "list the path only; a query string is not part of a route".into(),
        );
    }
    let segs: Vec<&str> = path
        .split('?')
        .next()
        .unwrap_or("")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    for (i, seg) in segs.iter().enumerate() {
        if is_param(seg) {
            let prev = i.checked_sub(1).map(|j| segs[j]);
            match prev {
                None => say(
                    "hierarchy",
                    format!("{seg} comes first; an id follows its collection"),
                ),
                Some(p) if is_param(p) => say(
                    "hierarchy",
                    format!("{seg} follows another id ({p}); put a collection name between them"),
                ),
                Some(p) if !is_plural(p) => say(
                    "plural-collections",
                    format!(
                        "\"{p}\" is followed by an id, so it names a collection: make it plural"
                    ),
                ),
                Some(_) => {}
            }
            continue;
        }
        if seg.chars().any(|c| c.is_ascii_uppercase()) {
            say(
                "lowercase",
                format!("\"{seg}\": use lowercase ({})", words(seg).join("-")),
            );
        }
        if seg.contains('_') {
            say(
                "hyphens",
                format!(
                    "\"{seg}\": use hyphens, not underscores ({})",
                    seg.replace('_', "-")
                ),
            );
        }
        if i + 1 == segs.len()
            && let Some((_, ext)) = seg.rsplit_once('.')
            && !ext.is_empty()
        {
            say(
                "no-extensions",
                format!("\".{ext}\": choose the format with Accept, not in the path"),
            );
        }
        for word in words(seg) {
            if VERBS.contains(&word.as_str()) {
                say(
                    "no-verbs",
                    format!(
                        "\"{seg}\" is an action; let the method ({}) say it",
                        verb_hint(&word)
                    ),
                );
                break;
            }
        }
    }
    out
}

/// The words of a segment: split at `-`, `_` and camelCase humps,
/// lowercased.
fn words(seg: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut prev_lower = false;
    for c in seg.chars() {
        if c == '-' || c == '_' || (c.is_ascii_uppercase() && prev_lower) {
            out.push(String::new());
        }
        if c != '-'
            && c != '_'
            && let Some(w) = out.last_mut()
        {
            w.push(c.to_ascii_lowercase());
        }
        prev_lower = c.is_ascii_lowercase();
    }
    out.retain(|w| !w.is_empty());
    out
}

fn verb_hint(word: &str) -> &'static str {
    match word {
        "get" | "fetch" | "list" | "show" | "find" => "GET",
        "create" | "make" | "add" | "insert" | "new" | "post" | "register" | "signup" => "POST",
        "delete" | "remove" | "destroy" | "logout" | "signout" => "DELETE",
        "update" | "edit" | "modify" | "change" | "set" | "put" | "save" => "PUT or PATCH",
        _ => "POST on a noun",
    }
}

/// Reads a route list: one route per line, `METHOD /path` or `/path`;
/// blank lines and `#` comments skipped. An error names the line.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let (a, b, rest) = (words.next(), words.next(), words.next());
        match (a, b, rest) {
            (Some(p), None, None) if p.starts_with('/') => out.push((String::new(), p.to_string())),
            (Some(m), Some(p), None) if m.chars().all(|c| c.is_ascii_alphabetic()) => {
                out.push((m.to_ascii_uppercase(), p.to_string()))
            }
            _ => {
                return Err(format!(
                    "line {}: expected \"METHOD /path\" or \"/path\", got {line:?}",
                    n + 1
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(method: &str, path: &str) -> Vec<&'static str> {
        check(method, path).into_iter().map(|f| f.rule).collect()
    }

    #[test]
    fn good_paths_pass() {
        for p in [
            "/api/users",
            "/api/users/{id}",
            "/api/users/{id}/posts",
            "/api/people/:id",
            "/api/me",
        ] {
            assert!(check("GET", p).is_empty(), "{p}: {:?}", check("GET", p));
        }
    }

    #[test]
    fn each_rule_is_caught() {
        assert_eq!(rules("GET", "/api/Users"), ["lowercase"]);
        assert_eq!(rules("GET", "/api/user_posts"), ["hyphens"]);
        assert_eq!(rules("GET", "/api/users/"), ["no-trailing-slash"]);
        assert_eq!(rules("GET", "/api/users.json"), ["no-extensions"]);
        assert_eq!(rules("GET", "/api/user/{id}"), ["plural-collections"]);
        assert_eq!(rules("GET", "/api/users/{id}/{post}"), ["hierarchy"]);
        assert_eq!(rules("POST", "/api/createUser"), ["lowercase", "no-verbs"]);
        assert_eq!(rules("POST", "/api/users/{id}/delete"), ["no-verbs"]);
    }

    #[test]
    fn the_list_format_is_read_with_line_numbers() {
        let ok = parse("# routes\nGET /api/users\n\n/api/posts  # any method\n").unwrap();
        assert_eq!(
            ok,
            [
                ("GET".into(), "/api/users".into()),
                (String::new(), "/api/posts".into())
            ]
        );
        let e = parse("GET /a\nGET /b extra\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
    }

    #[test]
    fn our_own_api_follows_the_rules() {
        for r in crate::routes::table()
            .iter()
            .filter(|r| r.pattern.starts_with("/api/"))
        {
            assert!(
                check(r.method.as_str(), r.pattern).is_empty(),
                "{}",
                r.pattern
            );
        }
    }
}
