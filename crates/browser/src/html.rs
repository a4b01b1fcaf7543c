//! Finding a page's subresources the way a browser's preload scanner does
//! (C05): stylesheets, scripts and images, resolved against the page URL.

use std::cell::RefCell;

use lol_html::{HtmlRewriter, Settings, element};
use url::Url;

/// What kind of subresource a URL is (it decides the Accept header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    Stylesheet,
    Script,
    Image,
}

/// An attribute value with its character references decoded (lol_html
/// hands values over as written; `&amp;` in a URL or a hidden field is
/// `&`). Named references beyond the five HTML escapes are left as they
/// are: no page of this world writes them.
fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut rest = v;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest.find(';').filter(|e| *e <= 10);
        let decoded = end.and_then(|e| {
            let name = &rest[1..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    let n = if let Some(h) = name.strip_prefix("#x").or(name.strip_prefix("#X")) {
                        u32::from_str_radix(h, 16).ok()
                    } else {
                        name.strip_prefix('#').and_then(|d| d.parse().ok())
                    };
                    n.and_then(char::from_u32)
                }
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Scans `html` and returns the subresources in document order, without
/// duplicates, limited to http(s).
pub fn subresources(html: &[u8], base: &Url) -> Vec<(Kind, Url)> {
    let found: RefCell<Vec<(Kind, Url)>> = RefCell::new(Vec::new());
    let add = |kind: Kind, value: Option<String>| {
        if let Some(u) = value.and_then(|v| base.join(unescape(&v).trim()).ok())
            && matches!(u.scheme(), "http" | "https")
        {
            let mut f = found.borrow_mut();
            if !f.iter().any(|(_, x)| *x == u) {
                f.push((kind, u));
            }
        }
    };
    let settings = Settings::new()
        .append_element_content_handler(element!("link[rel~=stylesheet][href]", |el| {
            add(Kind::Stylesheet, el.get_attribute("href"));
            Ok(())
        }))
        .append_element_content_handler(element!("script[src]", |el| {
            add(Kind::Script, el.get_attribute("src"));
            Ok(())
        }))
        .append_element_content_handler(element!("img[src]", |el| {
            add(Kind::Image, el.get_attribute("src"));
            Ok(())
        }));
    scan(html, settings);
    found.take()
}

/// Runs lol_html's handlers over `html`. A parse error only stops the
/// scan; what the handlers found so far is kept.
fn scan(html: &[u8], settings: Settings<'_, '_>) {
    let mut rewriter = HtmlRewriter::new(settings, |_: &[u8]| {});
    if rewriter.write(html).is_ok() {
        let _ = rewriter.end();
    }
}

/// A form as a page declares it: where it goes, how, and the fields it
/// would send before anyone types (hidden fields, preset values, checked
/// boxes). Submit buttons are left out: only the one pressed is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Form {
    pub action: Url,
    pub method: String,
    pub fields: Vec<(String, String)>,
}

/// The forms of `html`, in document order (an input belongs to the form
/// opened last before it).
pub fn forms(html: &[u8], base: &Url) -> Vec<Form> {
    let found: RefCell<Vec<Form>> = RefCell::new(Vec::new());
    let settings = Settings::new()
        .append_element_content_handler(element!("form", |el| {
            let action = el
                .get_attribute("action")
                .and_then(|a| base.join(unescape(&a).trim()).ok())
                .unwrap_or_else(|| base.clone());
            let method = el
                .get_attribute("method")
                .unwrap_or_else(|| "get".into())
                .to_ascii_uppercase();
            found.borrow_mut().push(Form {
                action,
                method,
                fields: Vec::new(),
            });
            Ok(())
        }))
        .append_element_content_handler(element!("input[name]", |el| {
            let kind = el
                .get_attribute("type")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let sent = match kind.as_str() {
                "submit" | "button" | "image" | "reset" | "file" => false,
                "checkbox" | "radio" => el.has_attribute("checked"),
                _ => true,
            };
            if sent && let Some(form) = found.borrow_mut().last_mut() {
                let name = unescape(&el.get_attribute("name").unwrap_or_default());
                let value = unescape(&el.get_attribute("value").unwrap_or_default());
                form.fields.push((name, value));
            }
            Ok(())
        }));
    scan(html, settings);
    found.take()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_css_js_and_images_resolved_and_deduplicated() {
        let base = Url::parse("https://myapp.test/login").unwrap();
        let html = br#"<html><head><link rel="stylesheet" href="/static/a.css">
            <link rel="icon" href="/favicon.ico"><script src="app.js"></script></head>
            <body><img src="/static/logo.png"><img src="/static/logo.png"><img src="data:image/png;base64,AA=="></body></html>"#;
        let got: Vec<String> = subresources(html, &base)
            .iter()
            .map(|(_, u)| u.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "https://myapp.test/static/a.css",
                "https://myapp.test/app.js",
                "https://myapp.test/static/logo.png"
            ]
        );
    }

    #[test]
    fn a_form_gives_its_action_method_and_preset_fields() {
        let base = Url::parse("https://id.test/authorize?x=1").unwrap();
        let html = br#"<p><form method="post" action="/authorize">
          <input type="hidden" name="state" value="a&amp;b&#39;&#x41;&nope; &">
          <input name="email" type="email" required>
          <input type="checkbox" name="remember">
          <input type="checkbox" name="news" value="yes" checked>
          <button type="submit" name="decision" value="allow">Allow</button>
        </form>"#;
        let f = forms(html, &base);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].action.as_str(), "https://id.test/authorize");
        assert_eq!(f[0].method, "POST");
        let want = [("state", "a&b'A&nope; &"), ("email", ""), ("news", "yes")];
        let got: Vec<(&str, &str)> = f[0]
            .fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, want);
    }
}
