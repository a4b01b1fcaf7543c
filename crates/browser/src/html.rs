//! Finding a page's subresources the way a browser's preload scanner does
//! (C05): stylesheets, scripts and images, resolved against the page URL.

use std::cell::RefCell;

use lol_html::{HtmlRewriter, Settings, element};
use url::Url;

/// What kind of subresource a URL is (it decides the Accept header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Stylesheet,
    Script,
    Image,
}

/// Scans `html` and returns the subresources in document order, without
/// duplicates, limited to http(s).
pub fn subresources(html: &[u8], base: &Url) -> Vec<(Kind, Url)> {
    let found: RefCell<Vec<(Kind, Url)>> = RefCell::new(Vec::new());
    let add = |kind: Kind, value: Option<String>| {
        if let Some(u) = value.and_then(|v| base.join(v.trim()).ok())
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
    let mut rewriter = HtmlRewriter::new(settings, |_: &[u8]| {});
    // A parse error only stops the scan; what was found so far is kept.
    if rewriter.write(html).is_ok() {
        let _ = rewriter.end();
    } else {
        drop(rewriter);
    }
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
}
